"""MostPop baseline: recommend the most frequent training targets to everyone, scored by the same metrics code.

usage: python -m eval.mostpop --category ML100K --output_dir models/MostPop/ML100K [--topk 1,5]
       [--candidates 20 [--candidate_seed 0]]
Popularity is the number of times an item is the target of a train record; ties go to the smaller item id. The
target's rank is its position in that one popularity order. ValidRatio does not apply (no text is generated).
Writes eval_top{K}.json and eval_users.jsonl (utils.metrics.write_eval_files), like eval/evaluate.py.
With --candidates N, the candidate protocol instead (utils/candidates.py): each user's target and N - 1 items they
never interacted with, drawn with --candidate_seed exactly as eval/inference.py --decoding candidates draws them,
ranked by popularity: eval_top{K}_candidates.json and eval_users_candidates.jsonl.
`write_list_evals` writes the eval files for every method that ranks the catalog without generating text (MostPop,
Random in eval/random_baseline.py, SASRec and GRU4Rec in eval/sasrec.py).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.cli import run_cli
from utils.data import category_dir, load_catalog, load_split, sample_records
from utils.io import check_output_dir
from utils.metrics import (
    Ranking,
    TrainContext,
    evaluated_records,
    history_rows,
    item_deciles,
    parse_ks,
    popularity,
    popularity_order,
    topk_metrics,
    write_eval_files,
)


def popularity_deciles(data_dir, catalog) -> np.ndarray:
    """(items,) training-popularity decile of each catalog row, 0 = the 10% of items most frequent as train targets
    (the order MostPop recommends in): what eval_users.jsonl records and eval/stats.py's TopDecile counts."""
    return item_deciles(popularity(load_split(data_dir, "train"), catalog))


def full_ranks(order: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N,) 0-based place of each target in its record's full ranking `order`, (N, items) catalog rows best first."""
    return np.argmax(order == np.asarray(targets)[:, None], axis=1)


def train_context(data_dir, catalog) -> TrainContext:
    """The category's training popularity and per-user train records (utils.metrics.TrainContext)."""
    return TrainContext.of(load_split(data_dir, "train"), catalog)


def write_list_evals(ranking: Ranking, test, catalog, context: TrainContext, ks, output_dir, model: str,
                     category: str) -> dict:
    """The eval files (every K), eval_users.jsonl and eval_context.json of a method that ranks the catalog for each
    evaluated test record and generates no text (ValidRatio does not apply, decoding None). Returns {K: metrics}."""
    histories = history_rows([test[i] for i in ranking.keep], catalog)
    results = {k: {**topk_metrics(ranking.ranks, ranking.topk, k, catalog, histories, targets=ranking.targets,
                                  popularity=context.popularity), "n_skipped": ranking.n_skipped,
                   "embedding_model": None} for k in ks}
    paths = write_eval_files(results, ranking, context, output_dir, model, category, test, decoding=None)
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
    candidates: int = 0  # 0: rank the whole catalog; N: the candidate protocol's N candidates per user
    candidate_seed: int = 0


def list_method_inputs(a) -> tuple[list[int], Path, object]:
    """What a method that ranks the catalog reads first (MostPop, eval/random_baseline.py): its K values, checked
    against the catalog, the category's folder and its catalog; the output folder checked before anything is read."""
    ks = parse_ks(a.topk)
    check_output_dir(a.output_dir)
    data = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    catalog = load_catalog(data)
    return parse_ks(ks, len(catalog)), data, catalog


def main(a: Args) -> None:
    ks, data, catalog = list_method_inputs(a)
    context = TrainContext.of(load_split(data, "train"), catalog)
    pop = context.popularity
    order = popularity_order(pop)
    rank_of = np.empty(len(catalog), dtype=np.int64)
    rank_of[order] = np.arange(len(catalog))
    test = sample_records(load_split(data, "test"), a.test_sample_size, a.seed)
    if a.candidates:
        return candidate_protocol(a, test, catalog, context, rank_of, ks, data)
    keep, targets, n_skipped = evaluated_records(test, catalog)
    topk_rows = np.tile(order[:max(ks)], (len(keep), 1))
    ranking = Ranking(keep, targets, rank_of[targets], topk_rows, None, None, n_skipped)
    write_list_evals(ranking, test, catalog, context, ks, a.output_dir, "MostPop", a.category or data.name)


def candidate_protocol(a: Args, test, catalog, context, rank_of, ks, data) -> None:
    """Each evaluated user's candidates ranked by training popularity (ties to the smaller item id)."""
    from utils.candidates import draw_candidates
    from utils.data import user_items
    from utils.io import UserError
    from utils.metrics import evaluate_rankings

    if ks[-1] > a.candidates:
        raise UserError(f"--topk {ks[-1]} is more than the {a.candidates} candidates")
    by_user = user_items(data)
    keep, _, _ = evaluated_records(test, catalog)
    drawn = {i: draw_candidates(test[i], catalog, by_user, a.candidate_seed, a.candidates) for i in keep}
    rankings = [sorted(drawn[i], key=lambda r: rank_of[r]) if i in drawn else [] for i in range(len(test))]
    extras = [{"candidates": drawn.get(i, [])} for i in range(len(test))]
    results, ranking = evaluate_rankings(test, rankings, catalog, ks, context.popularity, "candidates", extras)
    for m in results.values():
        m["ValidRatio"] = None  # nothing is generated
    ranking.valid = None
    paths = write_eval_files(results, ranking, context, a.output_dir, "MostPop", a.category or data.name, test,
                             decoding="candidates")
    for k, path in zip(results, paths):
        print(f"[mostpop] wrote {path}: HR={results[k]['HR']:.4f}")
    print(f"[mostpop] wrote {paths[-1]}: {len(ranking.keep)} users, {a.candidates} candidates each")


if __name__ == "__main__":
    run_cli(main)
