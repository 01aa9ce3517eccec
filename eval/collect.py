"""A run root's model directories and their eval files, collected into rows keyed by method, iteration and step:
what the report's tables (eval/report.py), its figures (eval/figures.py) and the statistics (eval/stats.py) read.
The directory layout is utils/methods.py's.
"""
import math
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from utils.io import UserError, read_json
from utils.methods import BY_NAME, METHODS, iteration_dirs, method_dir


class RowKey(NamedTuple):
    """One model directory of a run: a table row."""
    method: str
    iteration: int | None = None
    stage: str | None = None


# table columns: (metric key, higher is better)
TABLE_METRICS = (("HR", True), ("NDCG", True), ("DivRatio", True), ("ORRatio", False), ("MGU", False),
                 ("DGU", False), ("ValidRatio", True))
# the beyond-accuracy table, at the largest K (docs/metrics.md): the arrows say which way debiasing aims
BEYOND_METRICS = (("MRR", True), ("Coverage", True), ("Gini", False), ("Entropy", True), ("ARP", False),
                  ("TailShare", True), ("HR_head", True), ("HR_mid", True), ("HR_tail", True), ("PopREO", False))
HIGHER = dict(TABLE_METRICS + BEYOND_METRICS)
_EVAL = re.compile(r"eval_top(\d+)(_constrained|_candidates)?\.json")  # the names eval/evaluate.py's eval_name gives


def row_label(key: RowKey) -> str:
    key = RowKey(*key)
    if key.iteration is None:
        return key.method
    implicit = BY_NAME[key.method].implicit_step
    return f"{key.method} it{key.iteration}" + ("" if key.stage == implicit else f" {key.stage}")


def _sort_key(key: RowKey):
    key = RowKey(*key)
    method = BY_NAME[key.method]
    return (METHODS.index(method), -1 if key.iteration is None else key.iteration,
            0 if key.stage is None else method.steps.index(key.stage))


def model_dirs(run_root, category) -> dict[RowKey, Path]:
    """Every model directory of the category under a run root, in table order."""
    root = Path(run_root)
    out = {}
    for method in METHODS:
        base = method_dir(root, method.name, category)
        if not base.is_dir():
            continue
        if not method.iterative:
            out[RowKey(method.name)] = base
            continue
        for i, d in iteration_dirs(base):
            for step in method.steps:
                if (d / step).is_dir():
                    out[RowKey(method.name, i, step)] = d / step
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def read_evals(directory, decoding: str = "greedy") -> dict[int, dict]:
    """{K: eval dict} of a model directory's eval files of one decoding mode: eval_top{K}.json for greedy,
    eval_top{K}_constrained.json for constrained, eval_top{K}_candidates.json for the candidate protocol."""
    out = {}
    for p in Path(directory).glob("eval_top*.json"):
        m = _EVAL.fullmatch(p.name)
        if not m or (m.group(2) or "") != ("" if decoding == "greedy" else f"_{decoding}"):
            continue
        obj = read_json(p)
        if not isinstance(obj, dict):
            raise UserError(f"{p}: expected a JSON object (an eval file)")
        out[int(m.group(1))] = obj
    return dict(sorted(out.items()))


def collect(run_root, category, decoding: str = "greedy") -> dict:
    """{row key: {K: eval dict}} for every model directory with eval files of the decoding mode, in table order."""
    rows = {}
    for key, d in model_dirs(run_root, category).items():
        evals = read_evals(d, decoding)
        if evals:
            rows[key] = evals
    return rows


def answer_counts(texts) -> Counter:
    """How often each answer occurs among a model's per-user texts (eval_users.jsonl's "text"): the generated line
    without its newline; a missing text (MostPop's None) is not counted."""
    return Counter(t.strip() for t in texts if isinstance(t, str))


def _value(evals: dict, metric: str, k: int) -> float:
    v = evals.get(k, {}).get(metric)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def merge(collected: list[dict], ks, metrics) -> tuple[dict, list[str]]:
    """Rows present in every root: {key: {(metric, K): values over roots (nan where missing)}}; plus notes."""
    notes = []
    common = [key for key in collected[0] if all(key in c for c in collected[1:])]
    dropped = sorted({key for c in collected for key in c} - set(common), key=_sort_key)
    if dropped:
        notes.append("rows not in every run root, left out: " + ", ".join(row_label(k) for k in dropped))
    rows = {key: {(m, k): np.array([_value(c[key], m, k) for c in collected]) for m in metrics for k in ks}
            for key in common}
    return rows, notes


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the non-missing values; std is nan with fewer than two."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def parse_roots(run_root) -> list[Path]:
    items = run_root if isinstance(run_root, list | tuple) else str(run_root).split(",")
    roots = [Path(str(r).strip()) for r in items if str(r).strip()]
    if not roots:
        raise UserError("--run_root is empty")
    for r in roots:
        if not r.is_dir():
            raise UserError(f"run root {r} does not exist")
    return roots
