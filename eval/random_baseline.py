"""Random baseline: a seeded, uniformly random ranking of the whole catalog for each test user (the chance floor
beside MostPop), scored by the same metrics code.

usage: python -m eval.random_baseline --category ML100K --output_dir models/Random/ML100K [--topk 1,5] [--seed 42]
Each user's ranking is an independent uniform permutation of the catalog rows drawn from numpy's generator seeded
with --seed (the same seed samples --test_sample_size users first, as eval/mostpop.py does); items the user has seen
are not removed, as for every method. Its expected HR@K is K / items (0.0030 at K=5 on ML-100K's 1,664 items).
Writes eval_top{K}.json and eval_users.jsonl (eval.mostpop.write_list_evals), like MostPop.
"""
from dataclasses import dataclass

import numpy as np

from eval.mostpop import full_ranks, list_method_inputs, train_context, write_list_evals
from utils.cli import run_cli
from utils.data import load_split, sample_records
from utils.metrics import Ranking, evaluated_records


@dataclass
class Args:
    """The baseline's options (the command line's --name value; tests build it directly)."""
    output_dir: str
    category: str = "ML100K"
    data_dir: str = ""
    topk: str = "1,5"
    test_sample_size: int | None = None
    seed: int = 42


def main(a: Args) -> None:
    ks, data, catalog = list_method_inputs(a)
    test = sample_records(load_split(data, "test"), a.test_sample_size, a.seed)
    keep, targets, n_skipped = evaluated_records(test, catalog)
    order = np.argsort(np.random.default_rng(a.seed).random((len(keep), len(catalog))), axis=1)
    ranking = Ranking(keep, targets, full_ranks(order, targets), order[:, :max(ks)], None, None, n_skipped)
    write_list_evals(ranking, test, catalog, train_context(data, catalog), ks, a.output_dir, "Random",
                     a.category or data.name)


if __name__ == "__main__":
    run_cli(main)
