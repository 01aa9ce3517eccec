"""utils/metrics.py against the evaluation libraries recommender researchers use, on the same lists.

- MRR, NDCG and HR: called from trec_eval (the TREC reference implementation, through `ir-measures` and its
  `pytrec-eval-terrier` provider: RR@K, nDCG@K, Success@K), a dependency of this project.
- Coverage, Gini, Entropy, ARP and TailShare: RecBole's formulas, re-implemented once below, each line by line from
  recbole/evaluator/metrics.py (RUCAIBox/RecBole at commit 7b02be5e, the classes named in each function). RecBole
  itself is not installed: it pins an old stack (colorlog, tensorboard, thop, ray, ...) and its metric classes need a
  RecBole Config and DataStruct; its formulas are a few lines each.
The lists are the committed per-user files of a real run (943 users, 1,664 items), so every case the real data has
(targets outside the top-K, items recommended to everyone, never-recommended items) is covered, and a hand-made
set of lists with ties in the exposure counts.
"""
from collections import Counter

import ir_measures
import numpy as np
import pytest
from conftest import ROOT
from ir_measures import RR, Success, nDCG

from utils.metrics import TrainContext, popularity_groups, read_eval_users, recomputed_metrics

RUNS = ["results/demo/SFT/ML100K", "results/demo/MostPop/ML100K", "results/seeds/seed42/SPRec/ML100K/it1/DPO"]


# ----------------------------------------------------- RecBole's formulas (recbole/evaluator/metrics.py, 7b02be5e)
def recbole_item_coverage(item_matrix, num_items):
    """ItemCoverage.get_coverage: np.unique(item_matrix).shape[0] / num_items."""
    return np.unique(item_matrix).shape[0] / num_items


def recbole_gini_index(item_matrix, num_items):
    """GiniIndex.get_gini: the recommended items' counts sorted ascending take the last ranks of all num_items."""
    item_count = dict(Counter(item_matrix.flatten()))
    sorted_count = np.array(sorted(item_count.values()))
    num_recommended_items = sorted_count.shape[0]
    total_num = item_matrix.shape[0] * item_matrix.shape[1]
    idx = np.arange(num_items - num_recommended_items + 1, num_items + 1)
    gini_index = np.sum((2 * idx - num_items - 1) * sorted_count) / total_num
    gini_index /= num_items
    return gini_index


def recbole_shannon_entropy(item_matrix):
    """ShannonEntropy.get_entropy: -sum p log p over the recommended items, then divided by their number (RecBole's
    own normalisation, which the project does not apply: docs/metrics.md)."""
    item_count = dict(Counter(item_matrix.flatten()))
    total_num = item_matrix.shape[0] * item_matrix.shape[1]
    result = 0.0
    for cnt in item_count.values():
        p = cnt / total_num
        result += -p * np.log(p)
    return result / len(item_count)


def recbole_average_popularity(item_matrix, item_count, k):
    """AveragePopularity: get_pop (each item's training count, 0 when absent), metric_info (the running mean along
    the list: values.cumsum(axis=1) / arange(1, K + 1)) and topk_result (its mean over users at column k - 1)."""
    value = np.zeros_like(item_matrix)
    for i in range(item_matrix.shape[0]):
        row = item_matrix[i, :]
        for j in range(row.shape[0]):
            value[i][j] = item_count.get(row[j], 0)
    result = value.cumsum(axis=1) / np.arange(1, value.shape[1] + 1)
    return result.mean(axis=0)[k - 1]


def recbole_tail_percentage(item_matrix, tail_items, k):
    """TailPercentage: get_tail (1 for a tail item) with metric_info and topk_result as in AveragePopularity. RecBole
    draws its tail from `tail_ratio`; the project's tail (utils.metrics.popularity_groups) is passed in."""
    value = np.zeros_like(item_matrix)
    for i in range(item_matrix.shape[0]):
        row = item_matrix[i, :]
        for j in range(row.shape[0]):
            value[i][j] = 1 if row[j] in tail_items else 0
    result = value.cumsum(axis=1) / np.arange(1, value.shape[1] + 1)
    return result.mean(axis=0)[k - 1]


# ------------------------------------------------------------------------------------------------- the checks
def trec_eval(users, k):
    """{HR, NDCG, MRR} at k from trec_eval: one query per user, its target the one relevant document, its top-k the
    run, scored k, k-1, ... so that trec_eval's own tie-breaking never applies."""
    qrels = {str(q): {str(t): 1} for q, (_, t) in enumerate(users["keys"])}
    run = {str(q): {str(item): float(k - j) for j, item in enumerate(row[:k])} for q, row in enumerate(users["topk"])}
    got = ir_measures.calc_aggregate([Success @ k, nDCG @ k, RR @ k], qrels, run)
    return {"HR": got[Success @ k], "NDCG": got[nDCG @ k], "MRR": got[RR @ k]}


def check_against_libraries(users, context, k):
    ours = recomputed_metrics(users, k, context)
    for key, value in trec_eval(users, k).items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    rec, n_items = users["topk"][:, :k], len(context.popularity)
    count = {i: int(c) for i, c in enumerate(context.popularity) if c > 0}  # RecBole's Counter of train items
    tail = set(np.flatnonzero(popularity_groups(context.popularity) == 2).tolist())
    assert ours["Coverage"] == pytest.approx(recbole_item_coverage(rec, n_items), abs=1e-12)
    assert ours["Gini"] == pytest.approx(recbole_gini_index(rec, n_items), abs=1e-12)
    assert ours["Entropy"] == pytest.approx(recbole_shannon_entropy(rec) * len(np.unique(rec)), abs=1e-12)
    assert ours["ARP"] == pytest.approx(recbole_average_popularity(rec, count, k), abs=1e-9)
    assert ours["TailShare"] == pytest.approx(recbole_tail_percentage(rec, tail, k), abs=1e-12)
    return ours


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("k", [1, 5])
def test_committed_lists_against_trec_eval_and_recbole(run, k):
    d = ROOT / run
    users, context = read_eval_users(d / "eval_users.jsonl", k), TrainContext.read(d / "eval_context.json")
    ours = check_against_libraries(users, context, k)
    assert 0 < ours["Coverage"] < 1 and ours["n"] == 943  # a real run, not an empty one


def test_hand_made_lists_with_ties_and_misses():
    """Ten items, four users: a target at every place of a top-3 and one outside it; exposure counts that tie."""
    context = TrainContext(np.array([9, 7, 7, 3, 2, 1, 1, 0, 0, 0]), {})
    users = {"keys": [("a", 0), ("b", 4), ("c", 8), ("d", 9)],
             "topk": np.array([[0, 1, 2], [3, 4, 0], [5, 6, 8], [0, 1, 2]]),
             "ranks": np.array([0, 1, 2, 3]), "valid": [True] * 4}
    for k in (1, 2, 3):
        ours = check_against_libraries(users, context, k)
    assert ours["HR"] == 3 / 4 and ours["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 4)
