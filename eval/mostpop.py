"""MostPop baseline: recommend the most frequent training targets to everyone, scored by the same metrics code.

usage: python -m eval.mostpop --category ML100K --output_dir models/MostPop/ML100K [--topk 1,5]
Popularity is the number of times an item is the target of a train record; ties go to the smaller item id. The
target's rank is its position in that one popularity order. ValidRatio does not apply (no text is generated).
Writes eval_top{K}.json and eval_users.jsonl (utils.metrics.write_eval_files), like eval/evaluate.py.
`write_list_evals` writes them for every method that ranks the catalog without generating text (MostPop, Random in
eval/random_baseline.py, SASRec and GRU4Rec in eval/sasrec.py).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.cli import run_cli
from utils.data import category_dir, load_catalog, load_split, sample_records
from utils.io import check_output_dir
from utils.metrics import Ranking, evaluated_records, history_rows, parse_ks, topk_metrics, write_eval_files
from utils.prompt import record_target


def popularity(records, catalog) -> np.ndarray:
    """How often each catalog item is a target in `records`."""
    rows = [catalog.index(record_target(r)) for r in records]
    return np.bincount([r for r in rows if r is not None], minlength=len(catalog))


def item_deciles(counts, n_bins: int = 10) -> np.ndarray:
    """(items,) popularity bin of each catalog row from its target counts (`popularity`): 0 = the most popular 10%
    of items.

    Items are sorted by popularity, descending, ties broken by the smaller row (catalog rows are in item id order);
    the item at sorted position p falls in bin floor(p * n_bins / items).
    """
    pop = np.asarray(counts)
    n = len(pop)
    order = np.lexsort((np.arange(n), -pop))
    bins = np.empty(n, dtype=np.int64)
    bins[order] = np.arange(n) * n_bins // n
    return bins


def popularity_deciles(data_dir, catalog) -> np.ndarray:
    """(items,) training-popularity decile of each catalog row, 0 = the 10% of items most frequent as train targets
    (the order MostPop recommends in): what eval_users.jsonl records and eval/stats.py's TopDecile counts."""
    return item_deciles(popularity(load_split(data_dir, "train"), catalog))


def full_ranks(order: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) 0-based place of each target in its record's full ranking `order`, (N, items) catalog rows best first."""
    return np.argmax(order == np.asarray(targets)[:, None], axis=1)


def write_list_evals(ranking: Ranking, test, catalog, deciles, ks, output_dir, model: str, category: str) -> dict:
    """The eval files (every K) and eval_users.jsonl of a method that ranks the catalog for each evaluated test record
    and generates no text (ValidRatio does not apply, decoding None). Returns {K: metrics}."""
    histories = history_rows([test[i] for i in ranking.keep], catalog)
    results = {k: {**topk_metrics(ranking.ranks, ranking.topk, k, catalog, histories), "n_skipped": ranking.n_skipped,
                   "embedding_model": None} for k in ks}
    paths = write_eval_files(results, ranking, deciles, output_dir, model, category, test, decoding=None)
    tag = model.lower()
    for k, path in zip(results, paths):
        print(f"[{tag}] wrote {path}: HR={results[k]['HR']:.4f}")
    print(f"[{tag}] wrote {paths[-1]}: {len(ranking.keep)} users")
    return results


@dataclass
class Args:
    """The baseline's options (the command line's --name value; tests build it directly)."""
    output_dir: str
    category: str = "ML100K"
    data_dir: str = ""
    topk: str = "1,5"  # from the shell "1,5" arrives as the tuple (1, 5): utils.metrics.parse_ks takes both
    test_sample_size: int | None = None
    seed: int = 42


def main(a: Args) -> None:
    ks = parse_ks(a.topk)
    check_output_dir(a.output_dir)
    data = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    catalog = load_catalog(data)
    ks = parse_ks(ks, len(catalog))
    pop = popularity(load_split(data, "train"), catalog)
    order = np.lexsort((np.arange(len(catalog)), -pop))
    rank_of = np.empty(len(catalog), dtype=np.int64)
    rank_of[order] = np.arange(len(catalog))
    test = sample_records(load_split(data, "test"), a.test_sample_size, a.seed)
    keep, targets, n_skipped = evaluated_records(test, catalog)
    topk_rows = np.tile(order[:max(ks)], (len(keep), 1))
    ranking = Ranking(keep, targets, rank_of[targets], topk_rows, None, None, n_skipped)
    write_list_evals(ranking, test, catalog, item_deciles(pop), ks, a.output_dir, "MostPop", a.category or data.name)


if __name__ == "__main__":
    run_cli(main)
