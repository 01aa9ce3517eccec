"""The one metrics module (definitions: docs/metrics.md): HR, NDCG, diversity, DivRatio, ORRatio, MGU, DGU, ValidRatio.

`topk_metrics` works on rankings (the target's rank and the K nearest items per record), so grounded LLM outputs
and baselines such as MostPop go through the very same code. `evaluate_predictions` does the LLM path of greedy
decoding: parse, validate, ground, rank, then the metrics for every K. `evaluate_rankings` does that of constrained
beam search (utils/constrained.py), whose K ranked catalog items per record are the top-K as they are. Both also
return the per-record `Ranking` the metrics came from, which `write_eval_files` keeps as eval_users.jsonl so that
every statistic can be recomputed without the dataset or the embedding model (eval/stats.py).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.io import UserError
from utils.prompt import parse_title, record_history, record_target


def parse_ks(topk, n_items: int | None = None, flag: str = "--topk") -> list[int]:
    """A list of K values as sorted distinct positive integers: "1,5", (1, 5) (fire's parse of 1,5), 5 or [1, 5];
    none may exceed the catalog's `n_items`. `flag` names the option in the error."""
    import re

    raw = list(topk) if isinstance(topk, (list, tuple)) else str(topk).replace(",", " ").split()
    if not raw or not all(isinstance(k, (int, str)) and re.fullmatch(r"\s*\d+\s*", str(k)) for k in raw) \
            or any(int(k) < 1 for k in raw):  # bools, floats and words fail the pattern
        shown = ",".join(map(str, topk)) if isinstance(topk, (list, tuple)) else str(topk)
        raise UserError(f"{flag} must be positive integers separated by commas (e.g. 1,5), got {shown!r}")
    ks = sorted({int(k) for k in raw})
    if n_items is not None and ks[-1] > n_items:
        raise UserError(f"{flag} {ks[-1]} is larger than the catalog ({n_items} items); use a smaller K")
    return ks


def topk_metrics(target_rank: np.ndarray, topk: np.ndarray, k: int, catalog, histories, valid=None) -> dict:
    """Metrics at K for N evaluated records.

    target_rank: (N,) 0-based rank of each target in its full ranking. topk: (N, >=k) item rows, best first.
    histories: per record, the catalog rows of its history items. valid: (N,) bools, or None.
    """
    n = len(target_rank)
    if n == 0:
        return {"n": 0}
    hit = target_rank < k
    rec = topk[:, :k]
    counts = np.bincount(rec.ravel(), minlength=len(catalog))
    sets = set_metrics(rec, len(catalog), counts)
    weights = catalog.genre_weights()
    gp = counts @ weights
    flat_history = np.array([j for h in histories for j in h], dtype=np.int64)
    hist_counts = np.bincount(flat_history, minlength=len(catalog))
    gh = hist_counts @ weights
    gp = gp / gp.sum() if gp.sum() > 0 else gp
    gh = gh / gh.sum() if gh.sum() > 0 else gh
    diff = gp - gh
    return {
        "n": n,
        "HR": float(hit.mean()),
        "NDCG": float((hit / np.log2(target_rank + 2.0)).mean()),
        **sets,
        "MGU": float(np.abs(diff).mean()) if len(diff) else 0.0,
        "DGU": float(diff.max() - diff.min()) if len(diff) else 0.0,
        "ValidRatio": float(np.mean(valid)) if valid is not None else None,
    }


def set_metrics(rec: np.ndarray, n_items: int, counts=None) -> dict:
    """The metrics of the recommendation lists as a whole, (N, K) item rows: how many distinct items (diversity,
    DivRatio = distinct / (N x K)) and the share taken by the 3 most recommended items (ORRatio)."""
    counts = np.bincount(rec.ravel(), minlength=n_items) if counts is None else counts
    diversity = int((counts > 0).sum())
    return {"diversity": diversity, "DivRatio": diversity / rec.size,
            "ORRatio": float(np.sort(counts)[::-1][:3].sum() / rec.size)}


def evaluated_records(records, catalog):
    """Split records into those whose target is a catalog item (evaluated) and the count of the others."""
    keep, targets = [], []
    for i, r in enumerate(records):
        t = catalog.index(record_target(r))
        if t is not None:
            keep.append(i)
            targets.append(t)
    return keep, np.array(targets, dtype=np.int64), len(records) - len(keep)


def history_rows(records, catalog) -> list[list[int]]:
    return [[j for j in (catalog.index(h) for h in record_history(r)) if j is not None] for r in records]


@dataclass
class Ranking:
    """The evaluated records' top-K lists and their targets' places in them: what every metric is computed from, and
    what eval_users.jsonl keeps. N = the evaluated records (target in the catalog), K_max = the largest K."""
    keep: list[int]  # the evaluated records' indices in the result file
    targets: np.ndarray  # (N,) catalog rows of their targets
    ranks: np.ndarray  # (N,) 0-based rank of each target; K_max when not in its top-K (MostPop: its full order)
    topk: np.ndarray  # (N, K_max) catalog rows, best first
    valid: np.ndarray | None  # (N,) whether the parsed title is a catalog name; None when nothing is generated
    texts: list[str] | None  # (N,) the generated texts (greedy decoding); None otherwise
    n_skipped: int  # records whose target is not a catalog item


def evaluate_predictions(records, predictions, catalog, ks=(1, 5), embedding_model=None,
                         title=parse_title) -> tuple[dict, Ranking]:
    """Metrics for every K of generated texts (one per record), grounded by sentence-embedding distance: the top-K
    is the item the title (`title(text)`: the prompt contract's, utils/prompt.py) grounds to and its K-1 nearest
    catalog neighbours (the official definition); and the ranking they come from."""
    from utils.grounding import default_embedding_model, embedding_model_id

    embedding_model = embedding_model or default_embedding_model()
    ranking = ground_predictions(records, predictions, catalog, max(ks), embedding_model, title)
    extra = {"n_skipped": ranking.n_skipped, "embedding_model": embedding_model_id(embedding_model),
             "decoding": "greedy"}
    return _at_each_k(records, ranking, catalog, ks, extra), ranking


def ground_predictions(records, predictions, catalog, k: int, embedding_model=None, title=parse_title) -> Ranking:
    """The official top-k of generated texts, for the records whose target is a catalog item."""
    from utils.grounding import ground_titles, target_ranks

    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} records but {len(predictions)} predictions")
    keep, targets, n_skipped = evaluated_records(records, catalog)
    titles = [title(predictions[i]) for i in keep]
    valid = np.array([catalog.index(t) is not None for t in titles], dtype=bool)
    topk = ground_titles(titles, catalog, k, embedding_model) if keep else np.zeros((0, k), dtype=np.int64)
    return Ranking(keep, targets, target_ranks(topk, targets), topk, valid, [predictions[i] for i in keep], n_skipped)


def evaluate_rankings(records, rankings, catalog, ks=(1, 5)) -> tuple[dict, Ranking]:
    """Metrics for every K of ranked catalog items (constrained decoding), and the ranking they come from: each
    record's ranking, catalog rows best first (at least max(ks) of them), is its top-K itself; nothing is grounded,
    and every item is valid."""
    from utils.grounding import target_ranks

    if len(records) != len(rankings):
        raise ValueError(f"{len(records)} records but {len(rankings)} rankings")
    keep, targets, n_skipped = evaluated_records(records, catalog)
    topk = np.array([rankings[i][:max(ks)] for i in keep], dtype=np.int64).reshape(len(keep), max(ks))
    ranking = Ranking(keep, targets, target_ranks(topk, targets), topk, topk[:, 0] >= 0, None, n_skipped)
    extra = {"n_skipped": n_skipped, "embedding_model": None, "decoding": "constrained"}
    return _at_each_k(records, ranking, catalog, ks, extra), ranking


def _at_each_k(records, ranking: Ranking, catalog, ks, extra) -> dict:
    histories = history_rows([records[i] for i in ranking.keep], catalog)
    results = {}
    for k in ks:
        m = topk_metrics(ranking.ranks, ranking.topk, k, catalog, histories, ranking.valid) if ranking.keep \
            else {"n": 0}
        results[k] = {"topk": k, **m, **extra}
    return results


# ------------------------------------------------------------------------------------------ eval files
METRIC_KEYS = ("HR", "NDCG", "diversity", "DivRatio", "ORRatio", "MGU", "DGU", "ValidRatio")
DECODINGS = ("greedy", "constrained")


def check_decoding(decoding) -> str:
    if decoding not in DECODINGS:
        raise UserError(f"--decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    return decoding


def _suffix(decoding) -> str:
    """Greedy (and MostPop, decoding None) files keep the official names; constrained decoding's get a suffix."""
    return "_constrained" if decoding == "constrained" else ""


def result_name(split: str, decoding: str = "greedy") -> str:
    """The predictions file eval/inference.py writes into a model directory: test_result[_constrained].json."""
    return f"{split}_result{_suffix(decoding)}.json"


def eval_name(k: int, decoding: str | None = "greedy") -> str:
    """eval_top{K}.json for greedy decoding (and MostPop), eval_top{K}_constrained.json for constrained decoding."""
    return f"eval_top{k}{_suffix(decoding)}.json"


def users_name(decoding: str | None = "greedy") -> str:
    """The per-user file beside the eval files: eval_users.jsonl (greedy, MostPop), eval_users_constrained.jsonl."""
    return f"eval_users{_suffix(decoding)}.jsonl"


def prediction_text(record, path, index) -> str:
    if "logprobs" in record:  # only constrained decoding writes them: its K items must not be grounded as one text
        raise UserError(f"{path}: record {index} holds ranked catalog items from constrained decoding: evaluate it "
                        f"with --decoding constrained")
    pred = record.get("predict")
    if isinstance(pred, list):
        pred = pred[0] if pred else ""
    if not isinstance(pred, str):
        raise UserError(f"{path}: record {index} has no 'predict' text (expected a string or a list of strings)")
    return pred


def user_rows(records, ranking: Ranking, deciles: np.ndarray) -> list[dict]:
    """One small JSON object per evaluated record, in evaluation order: everything eval/stats.py needs, and nothing it
    does not (no history, no prompt).

    user: the record's `user` (its index in the result file when it has none); target: the target's catalog row
    (rows are the items in id order); target_decile, deciles: the training-popularity decile of the target and of
    each top-K item (0 = the 10% of items most frequent as train targets, eval.mostpop.item_deciles); rank: the
    target's 0-based place in topk, null when it is not there; topk: the K_max catalog rows, best first; valid:
    whether the parsed title is a catalog name (null for MostPop); text: the generated text (greedy decoding only).
    """
    k_max = ranking.topk.shape[1]
    rows = []
    for j, i in enumerate(ranking.keep):
        rank, target, top = int(ranking.ranks[j]), int(ranking.targets[j]), ranking.topk[j]
        rows.append({"user": records[i].get("user", i), "target": target, "target_decile": int(deciles[target]),
                     "rank": rank if rank < k_max else None, "topk": top.tolist(), "deciles": deciles[top].tolist(),
                     "valid": None if ranking.valid is None else bool(ranking.valid[j]),
                     "text": None if ranking.texts is None else ranking.texts[j]})
    return rows


def write_eval_files(results: dict, ranking: Ranking, deciles: np.ndarray, output_dir, model: str, category: str,
                     records, decoding: str | None = "greedy") -> list[Path]:
    """eval_top{K}[_constrained].json with the keys of docs/metrics.md in its order: the metrics, then the decoding
    that made the predictions (None for MostPop: nothing is decoded) and which test records were evaluated (a
    fingerprint: the same for every model evaluated on the same users); then eval_users[_constrained].jsonl
    (`user_rows`, for the largest K), from which every metric but MGU and DGU (they need the histories) and every
    paired statistic can be recomputed. `deciles`: (items,) training-popularity decile of each catalog row."""
    from utils.data import records_fingerprint
    from utils.io import write_json, write_jsonl

    paths, fingerprint = [], records_fingerprint(records)
    for k, m in results.items():
        row = {"model": model, "category": category, "topk": k, "n": m["n"], "n_skipped": m["n_skipped"],
               **{key: m.get(key) for key in METRIC_KEYS}, "embedding_model": m["embedding_model"],
               "decoding": decoding, "test_records": fingerprint}
        path = Path(output_dir) / eval_name(k, decoding)
        write_json(path, row)
        paths.append(path)
    path = Path(output_dir) / users_name(decoding)
    write_jsonl(path, user_rows(records, ranking, np.asarray(deciles)))
    return paths + [path]


def read_eval_users(path, k: int) -> dict:
    """The top-k of each user in an eval_users file, as arrays: {"keys": [(user, target row)], "topk": (N, k) rows,
    "ranks": (N,) 0-based ranks (K_max, the file's list length, when the target is not in its top-K_max),
    "deciles": (N, k) popularity deciles of those items, "target_deciles": (N,), "texts": [the generated answer, None
    for MostPop], "valid": [whether the answer is a catalog title, None for MostPop]}."""
    from utils.io import read_jsonl

    path = Path(path)
    lines = read_jsonl(path)
    if not lines:
        raise UserError(f"{path}: no evaluated user")
    for line, r in lines:
        if not isinstance(r, dict):
            raise UserError(f"{path}, line {line}: not a JSON object (a per-user record of eval/evaluate.py)")
    try:
        topk = np.array([r["topk"] for _, r in lines], dtype=np.int64)
        deciles = np.array([r["deciles"] for _, r in lines], dtype=np.int64)
        k_max = topk.shape[1] if topk.ndim == 2 and topk.shape == deciles.shape else None
        ranks = np.array([k_max if r["rank"] is None else r["rank"] for _, r in lines], dtype=np.int64)
        keys = [(str(r["user"]), int(r["target"])) for _, r in lines]
        target_deciles = np.array([r["target_decile"] for _, r in lines], dtype=np.int64)
        texts = [r["text"] for _, r in lines]
        valid = [r["valid"] for _, r in lines]
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: not an eval_users file ({type(e).__name__}: {e})") from None
    if k_max is None:
        raise UserError(f"{path}: not an eval_users file (lists of different lengths)")
    if k > k_max:
        raise UserError(f"{path} holds top-{k_max} lists, fewer than K={k}: evaluate again with --topk {k}")
    return {"keys": keys, "topk": topk[:, :k], "ranks": ranks, "deciles": deciles[:, :k],
            "target_deciles": target_deciles, "texts": texts, "valid": valid}
