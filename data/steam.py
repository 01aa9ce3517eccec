"""Steam: the UCSD Steam dumps (Kang & McAuley, ICDM 2018; Pathak et al., SIGIR 2017). Their lines are Python
literals, not JSON; they are parsed with `ast.literal_eval` (never eval).

Files expected in the --raw folder:
- reviews, one of (`--reviews` picks; default: steam_reviews when present):
  `steam_reviews.json.gz`: flat records {"username", "product_id", "date": "2017-12-17", ...}; the user is
  `username`;
  `australian_user_reviews.json.gz`: per-user records {"user_id", "reviews": [{"item_id", "posted":
  "Posted November 5, 2011.", ...}]}; reviews of the crawl year carry no year ("Posted March 14.") and are dropped
  and counted unless --posted_year gives it.
- games: `steam_games.json.gz`: {"id", "app_name", "title", "genres": [...], ...}; the name is `app_name`, else
  `title`; records without an id are skipped and counted.
Dates have a day resolution (UTC midnight); reviews of one day keep their file order.
"""
from pathlib import Path

from data.protocol import Domain, Interactions
from data.rawio import BadLines, key_str, parse_iso_date, parse_steam_posted, records, require_file
from utils.io import UserError

DOMAIN = Domain("game", "games", "played")
REVIEW_FILES = {"steam_reviews": "steam_reviews.json.gz", "australian_user_reviews": "australian_user_reviews.json.gz"}


def read_steam(raw: Path, reviews: str | None = None, posted_year: int | None = None, bad: BadLines | None = None):
    """(items, interactions, source description, extra stats) from a folder of Steam dumps."""
    bad = bad or BadLines()
    if not raw.is_dir():
        raise UserError(f"{raw}: not a folder (--raw must be the folder holding the Steam .json.gz dumps)")
    if reviews is None:
        reviews = next((k for k, f in REVIEW_FILES.items() if (raw / f).is_file()), "steam_reviews")
    if reviews not in REVIEW_FILES:
        raise UserError(f"bad --reviews {reviews!r}: one of {', '.join(REVIEW_FILES)}")
    reviews_path = require_file(raw / REVIEW_FILES[reviews], f"the {reviews} dump")
    games_path = require_file(raw / "steam_games.json.gz", "the game titles and genres")

    log, undated = Interactions(), 0
    if reviews == "steam_reviews":
        for lineno, r in records(reviews_path, bad, literal=True):
            user, game, date = key_str(r.get("username")), key_str(r.get("product_id")), r.get("date")
            try:
                if user is None or game is None or not isinstance(date, str):
                    raise ValueError("needs username, product_id and date")
                log.add(user, game, parse_iso_date(date))
            except ValueError as e:
                bad(reviews_path, lineno, str(e))
    else:
        for lineno, r in records(reviews_path, bad, literal=True):
            user, revs = key_str(r.get("user_id")), r.get("reviews")
            if user is None or not isinstance(revs, list):
                bad(reviews_path, lineno, "needs user_id and a reviews list")
                continue
            rows = []
            try:
                for rev in revs:
                    if not isinstance(rev, dict):
                        raise ValueError("every review must be an object")
                    game = key_str(rev.get("item_id"))
                    if game is None or not isinstance(rev.get("posted"), str):
                        raise ValueError("every review needs item_id and posted")
                    posted = parse_steam_posted(rev["posted"], posted_year)
                    if posted is None:
                        undated += 1
                    else:
                        rows.append((game, posted))
            except ValueError as e:
                bad(reviews_path, lineno, str(e))
                continue
            for game, posted in rows:
                log.add(user, game, posted)

    items, no_id = {}, 0
    for _lineno, r in records(games_path, bad, literal=True):
        game = key_str(r.get("id"))
        if game is None:
            no_id += 1
            continue
        if not log.has_item(game) or game in items:
            continue
        name = r.get("app_name") if isinstance(r.get("app_name"), str) and r["app_name"].strip() else r.get("title")
        genres = r.get("genres") if isinstance(r.get("genres"), list) else []
        items[game] = (name if isinstance(name, str) else "", [g for g in genres if isinstance(g, str)])
    extra = {"steam_reviews_file": reviews_path.name, "games_without_id": no_id,
             "items_missing_from_games_file": len(log.item_keys) - len(items)}
    if reviews == "australian_user_reviews":
        extra.update({"reviews_without_year": undated, "posted_year": posted_year})
    return items, log, f"Steam {reviews_path.name} + {games_path.name}", extra
