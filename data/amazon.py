"""Amazon Reviews 2018 (Ni, Li & McAuley, EMNLP 2019), one category, gzip JSON lines.

Files expected in the --raw folder, for category C (e.g. CDs_and_Vinyl):
- reviews: `C.json.gz` (all reviews), else `C_5.json.gz` (the 5-core subset); records {"reviewerID", "asin",
  "unixReviewTime", ...}.
- metadata: `meta_C.json.gz`; records {"asin", "title", "category": ["CDs & Vinyl", "Pop", ...], ...}. Lines that
  are Python literals (the 2014 edition) are read too.
Uncompressed `.json` files with the same names work as well. An item's genre is its second-level category
(`category[1]`, the level under the category's own name). HTML tags in titles are removed; titles longer than
`MAX_TITLE` characters (scraped page fragments) count as untitled.
"""
import re
from pathlib import Path

from data.protocol import Domain, Interactions
from data.rawio import BadLines, first_existing, key_str, records
from utils.io import UserError

MAX_TITLE = 200
GENERIC = Domain("item", "items", "bought")
# Instruction words per category; any other category gets GENERIC (or --words).
DOMAINS = {
    "CDs_and_Vinyl": Domain("CD", "CDs", "listened to"),
    "Digital_Music": Domain("album", "albums", "listened to"),
    "Books": Domain("book", "books", "read"),
    "Kindle_Store": Domain("book", "books", "read"),
    "Movies_and_TV": Domain("movie", "movies", "watched"),
    "Video_Games": Domain("game", "games", "played"),
}
_META = re.compile(r"meta_(.+)\.json(\.gz)?")
_TAG = re.compile(r"<[^>]*>")


def domain_for(category: str, words: str | None = None) -> Domain:
    """--words 'noun,plural,verb' (e.g. 'toy,toys,bought'), else the table above, else 'item,items,bought'."""
    if words:
        parts = [w.strip() for w in words.split(",")]
        if len(parts) != 3 or not all(parts):
            raise UserError(f"bad --words {words!r}: expected 'noun,plural,verb', e.g. 'CD,CDs,listened to'")
        return Domain(*parts)
    return DOMAINS.get(category, GENERIC)


def find_category(raw: Path, category: str | None) -> str:
    if not raw.is_dir():
        raise UserError(f"{raw}: not a folder (--raw must be the folder holding <Category>.json.gz and meta_<...>)")
    if category:
        return category
    found = sorted({m.group(1) for p in raw.iterdir() if (m := _META.fullmatch(p.name))})
    if len(found) != 1:
        raise UserError(f"{raw}: expected exactly one meta_<Category>.json.gz, found {', '.join(found) or 'none'}; "
                        "pick one with --category")
    return found[0]


def read_amazon(raw: Path, category: str, bad: BadLines | None = None):
    """(items, interactions, source description, extra stats) for one Amazon 2018 category."""
    bad = bad or BadLines()
    reviews = first_existing(raw, [f"{category}.json.gz", f"{category}_5.json.gz", f"{category}.json",
                                   f"{category}_5.json"], f"the reviews of {category}")
    meta = first_existing(raw, [f"meta_{category}.json.gz", f"meta_{category}.json"], f"the metadata of {category}")
    log = Interactions()
    for lineno, r in records(reviews, bad):
        user, asin, ts = key_str(r.get("reviewerID")), key_str(r.get("asin")), r.get("unixReviewTime")
        if isinstance(ts, str) and ts.strip().isdigit():
            ts = int(ts)
        if user is None or asin is None or isinstance(ts, bool) or not isinstance(ts, int | float) or ts != ts:
            bad(reviews, lineno, "needs reviewerID, asin and a numeric unixReviewTime")
            continue
        log.add(user, asin, float(ts))
    items, too_long = {}, 0
    for lineno, r in records(meta, bad, literal=True):
        asin = key_str(r.get("asin"))
        if asin is None:
            bad(meta, lineno, "needs an asin")
            continue
        if not log.has_item(asin) or asin in items:
            continue
        title = r.get("title")
        title = _TAG.sub(" ", title) if isinstance(title, str) else ""
        if len(title) > MAX_TITLE:
            too_long += 1
            title = ""
        cats = r.get("category", r.get("categories"))
        if isinstance(cats, list) and cats and isinstance(cats[0], list):  # 2014 edition: a list of paths
            cats = cats[0]
        genre = cats[1].strip() if isinstance(cats, list) and len(cats) > 1 and isinstance(cats[1], str) else ""
        items[asin] = (title, [genre] if genre else [])
    extra = {"amazon_category": category, "items_title_too_long": too_long,
             "items_missing_from_meta": len(log.item_keys) - len(items)}
    return items, log, f"Amazon Reviews 2018 {reviews.name} + {meta.name}", extra
