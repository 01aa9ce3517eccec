"""The one metrics module (definitions: docs/metrics.md): HR, NDCG, diversity, DivRatio, ORRatio, MGU, DGU, ValidRatio,
and beyond accuracy: MRR, Coverage, Gini, Entropy, ARP, TailShare, HR and NDCG per target-popularity group, PopREO.

`topk_metrics` works on rankings (the target's rank and the K nearest items per record), so grounded LLM outputs
and baselines such as MostPop go through the very same code. `evaluate_predictions` does the LLM path of greedy
decoding: parse, validate, ground, rank, then the metrics for every K. `evaluate_rankings` does that of constrained
beam search (utils/constrained.py), whose K ranked catalog items per record are the top-K as they are. Both also
return the per-record `Ranking` the metrics came from, which `write_eval_files` keeps as eval_users.jsonl so that
every statistic can be recomputed without the dataset or the embedding model (eval/stats.py). The beyond-accuracy
metrics also need the items' training popularity, which `write_eval_files` keeps beside them (eval_context.json);
`recomputed_metrics` gives every metric but MGU and DGU from those two files alone (eval/recompute.py).
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


def topk_metrics(target_rank: np.ndarray, topk: np.ndarray, k: int, catalog, histories, valid=None, *,
                 targets=None, popularity=None) -> dict:
    """Metrics at K for N evaluated records.

    target_rank: (N,) 0-based rank of each target in its full ranking. topk: (N, >=k) item rows, best first.
    histories: per record, the catalog rows of its history items. valid: (N,) bools, or None. With `targets` ((N,)
    catalog rows) and `popularity` ((items,) training-target counts) the beyond-accuracy metrics too.
    """
    n = len(target_rank)
    if n == 0:
        return {"n": 0}
    rec = topk[:, :k]
    counts = np.bincount(rec.ravel(), minlength=len(catalog))
    weights = catalog.genre_weights()
    gp = counts @ weights
    flat_history = np.array([j for h in histories for j in h], dtype=np.int64)
    hist_counts = np.bincount(flat_history, minlength=len(catalog))
    gh = hist_counts @ weights
    gp = gp / gp.sum() if gp.sum() > 0 else gp
    gh = gh / gh.sum() if gh.sum() > 0 else gh
    diff = gp - gh
    out = {
        "n": n,
        **{key: v for key, v in rank_metrics(target_rank, k).items() if key != "MRR"},
        **set_metrics(rec, len(catalog), counts),
        "MGU": float(np.abs(diff).mean()) if len(diff) else 0.0,
        "DGU": float(diff.max() - diff.min()) if len(diff) else 0.0,
        "ValidRatio": float(np.mean(valid)) if valid is not None else None,
    }
    if popularity is not None:
        if len(popularity) != len(catalog):
            raise ValueError(f"popularity of {len(popularity)} items for a catalog of {len(catalog)}")
        out |= beyond_accuracy(target_rank, rec, np.asarray(targets), k, np.asarray(popularity), counts)
    return out


def rank_metrics(target_rank: np.ndarray, k: int) -> dict:
    """HR@K, NDCG@K and MRR@K: means over the records of 1[r < K], 1[r < K] / log2(r + 2) and 1[r < K] / (r + 1)."""
    hit = target_rank < k
    return {"HR": float(hit.mean()), "NDCG": float((hit / np.log2(target_rank + 2.0)).mean()),
            "MRR": float((hit / (target_rank + 1.0)).mean())}


def set_metrics(rec: np.ndarray, n_items: int, counts=None) -> dict:
    """The metrics of the recommendation lists as a whole, (N, K) item rows: how many distinct items (diversity,
    DivRatio = distinct / (N x K)) and the share taken by the 3 most recommended items (ORRatio)."""
    counts = np.bincount(rec.ravel(), minlength=n_items) if counts is None else counts
    diversity = int((counts > 0).sum())
    return {"diversity": diversity, "DivRatio": diversity / rec.size,
            "ORRatio": float(np.sort(counts)[::-1][:3].sum() / rec.size)}


# ------------------------------------------------------------------------------------------ beyond accuracy
POP_GROUPS = ("head", "mid", "tail")
BEYOND_KEYS = ("MRR", "Coverage", "Gini", "Entropy", "ARP", "TailShare", *(f"HR_{g}" for g in POP_GROUPS),
               *(f"NDCG_{g}" for g in POP_GROUPS), "PopREO")
HEAD_PERCENT, TAIL_PERCENT = 20, 20  # of the training interactions (the tail: outside the items that hold 80%)


def popularity_order(popularity) -> np.ndarray:
    """Catalog rows by training popularity, descending, ties to the smaller row (item id): MostPop's order."""
    pop = np.asarray(popularity)
    return np.lexsort((np.arange(len(pop)), -pop))


def popularity(records, catalog) -> np.ndarray:
    """How often each catalog item is a target in `records` (of the train split: its training popularity, the order
    MostPop recommends in)."""
    rows = [catalog.index(record_target(r)) for r in records]
    return np.bincount([r for r in rows if r is not None], minlength=len(catalog))


def item_deciles(counts, n_bins: int = 10) -> np.ndarray:
    """(items,) popularity bin of each catalog row from its target counts (`popularity`): 0 = the most popular 10%
    of items. The item at position p of `popularity_order` falls in bin floor(p * n_bins / items)."""
    order = popularity_order(counts)
    bins = np.empty(len(order), dtype=np.int64)
    bins[order] = np.arange(len(order)) * n_bins // len(order)
    return bins


def popularity_groups(popularity) -> np.ndarray:
    """(items,) 0 head, 1 mid, 2 tail: the one definition of the popular head and the long tail.

    Items in popularity order (`popularity_order`); an item is in the head while the items before it hold less than
    20% of the training interactions (train targets), in the mid while they hold less than 80%, else in the tail
    (Abdollahpouri et al., "The Unfairness of Popularity Bias in Recommendation", 2019: H, M, T). So the head and
    mid together are the short head holding 80% of the interactions, and the tail the rest (never-targets included).
    """
    pop = np.asarray(popularity, dtype=np.int64)
    order = popularity_order(pop)
    before = np.cumsum(pop[order]) - pop[order]
    total = int(pop.sum())
    # in integers, so a boundary is exact: before < 20% of total <=> 100 before < 20 total
    group = np.where(100 * before < HEAD_PERCENT * total, 0,
                     np.where(100 * before < (100 - TAIL_PERCENT) * total, 1, 2))
    out = np.empty(len(pop), dtype=np.int64)
    out[order] = group
    return out


def beyond_accuracy(target_rank, rec, targets, k: int, popularity, counts=None) -> dict:
    """The beyond-accuracy metrics at K of (N, K) lists `rec` (docs/metrics.md): MRR; item coverage of the catalog;
    the Gini index and Shannon entropy of the items' exposure; the average training popularity of the recommended
    items (ARP); the share of tail items in the lists (TailShare, APLT); HR and NDCG per target group (head, mid,
    tail; None for a group no target is in) and PopREO, their HR's coefficient of variation over the groups."""
    n_items = len(popularity)
    counts = np.bincount(rec.ravel(), minlength=n_items) if counts is None else counts
    share = counts[counts > 0] / rec.size
    ordered = np.sort(counts)  # ascending, never-recommended items included (0s first)
    j = np.arange(1, n_items + 1)
    group = popularity_groups(popularity)
    out = {"MRR": rank_metrics(target_rank, k)["MRR"],
           "Coverage": int((counts > 0).sum()) / n_items,
           "Gini": float(((2 * j - n_items - 1) * ordered).sum() / (n_items * ordered.sum())),
           "Entropy": float(-(share * np.log(share)).sum()),
           "ARP": float(np.asarray(popularity)[rec].mean()),
           "TailShare": float((group[rec] == 2).mean())}
    hr = {}
    for g, name in enumerate(POP_GROUPS):
        mask = group[targets] == g
        m = rank_metrics(target_rank[mask], k) if mask.any() else {"HR": None, "NDCG": None}
        hr[name] = m["HR"]
        out[f"HR_{name}"], out[f"NDCG_{name}"] = m["HR"], m["NDCG"]
    out["PopREO"] = pop_reo([v for v in hr.values() if v is not None])
    return {key: out[key] for key in BEYOND_KEYS}


def pop_reo(group_hr) -> float | None:
    """std / mean (population std) of the hit rates of the target groups present: 0 = every group is hit as often
    (Zhu et al., "Popularity-Opportunity Bias in Collaborative Filtering", WSDM 2021; Elliot's PopREO). None with
    fewer than two groups or no hit at all."""
    v = np.asarray(group_hr, dtype=np.float64)
    if len(v) < 2 or v.mean() == 0:
        return None
    return float(v.std() / v.mean())


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
    extras: list[dict] | None = None  # (N,) more fields for each per-user line (the candidate protocol's candidates)


def evaluate_predictions(records, predictions, catalog, ks=(1, 5), embedding_model=None, title=parse_title,
                         popularity=None) -> tuple[dict, Ranking]:
    """Metrics for every K of generated texts (one per record), grounded by sentence-embedding distance: the top-K
    is the item the title (`title(text)`: the prompt contract's, utils/prompt.py) grounds to and its K-1 nearest
    catalog neighbours (the official definition); and the ranking they come from. With `popularity` (each catalog
    row's training popularity) the beyond-accuracy metrics too."""
    from utils.grounding import default_embedding_model, embedding_model_id

    embedding_model = embedding_model or default_embedding_model()
    ranking = ground_predictions(records, predictions, catalog, max(ks), embedding_model, title)
    extra = {"n_skipped": ranking.n_skipped, "embedding_model": embedding_model_id(embedding_model),
             "decoding": "greedy"}
    return _at_each_k(records, ranking, catalog, ks, extra, popularity), ranking


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


def evaluate_rankings(records, rankings, catalog, ks=(1, 5), popularity=None, decoding: str = "constrained",
                      extras=None) -> tuple[dict, Ranking]:
    """Metrics for every K of ranked catalog items, and the ranking they come from: each record's ranking, catalog
    rows best first, is its top-K itself; nothing is grounded, and every item is valid.

    Constrained decoding gives each record max(ks) items, the target's rank max(ks) when it is not among them. The
    candidate protocol gives every candidate ranked (the target among them), all kept in the per-user file so that
    every K up to the number of candidates can be recomputed; `extras` adds fields to each record's per-user line."""
    if len(records) != len(rankings):
        raise ValueError(f"{len(records)} records but {len(rankings)} rankings")
    keep, targets, n_skipped = evaluated_records(records, catalog)
    width = max(ks) if decoding == "constrained" else min((len(rankings[i]) for i in keep), default=max(ks))
    if width < max(ks):
        raise ValueError(f"rankings of {width} items cannot give the top-{max(ks)}")
    topk = np.array([rankings[i][:width] for i in keep], dtype=np.int64).reshape(len(keep), width)
    ranks = np.array([row.tolist().index(t) if t in row else width for row, t in zip(topk, targets)],
                     dtype=np.int64)
    ranking = Ranking(keep, targets, ranks, topk, topk[:, 0] >= 0, None, n_skipped,
                      None if extras is None else [extras[i] for i in keep])
    extra = {"n_skipped": n_skipped, "embedding_model": None, "decoding": decoding}
    return _at_each_k(records, ranking, catalog, ks, extra, popularity), ranking


def _at_each_k(records, ranking: Ranking, catalog, ks, extra, popularity=None) -> dict:
    histories = history_rows([records[i] for i in ranking.keep], catalog)
    results = {}
    for k in ks:
        m = topk_metrics(ranking.ranks, ranking.topk, k, catalog, histories, ranking.valid, targets=ranking.targets,
                         popularity=popularity) if ranking.keep else {"n": 0}
        results[k] = {"topk": k, **m, **extra}
    return results


# ------------------------------------------------------------------------------------------ eval files
METRIC_KEYS = ("HR", "NDCG", "diversity", "DivRatio", "ORRatio", "MGU", "DGU", "ValidRatio", *BEYOND_KEYS)
DECODINGS = ("greedy", "constrained", "candidates")
CONTEXT_NAME = "eval_context.json"  # beside the per-user files: the training popularity they are scored against


def check_decoding(decoding) -> str:
    if decoding not in DECODINGS:
        raise UserError(f"--decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    return decoding


def _suffix(decoding) -> str:
    """Greedy (and MostPop, decoding None) files keep the official names; the other modes' get a suffix."""
    return f"_{decoding}" if decoding in ("constrained", "candidates") else ""


def result_name(split: str, decoding: str = "greedy") -> str:
    """The predictions file eval/inference.py writes into a model directory: test_result[_<decoding>].json."""
    return f"{split}_result{_suffix(decoding)}.json"


def eval_name(k: int, decoding: str | None = "greedy") -> str:
    """eval_top{K}.json for greedy decoding (and MostPop), eval_top{K}_constrained.json for constrained decoding,
    eval_top{K}_candidates.json for the candidate protocol."""
    return f"eval_top{k}{_suffix(decoding)}.json"


def users_name(decoding: str | None = "greedy") -> str:
    """The per-user file beside the eval files: eval_users.jsonl (greedy, MostPop), eval_users_constrained.jsonl,
    eval_users_candidates.jsonl."""
    return f"eval_users{_suffix(decoding)}.jsonl"


def stats_name(category: str, decoding: str = "greedy", k: int = 5) -> str:
    """The paired statistics file eval/stats.py writes by default: <C>_stats.md for greedy decoding at K=5,
    <C>_stats_constrained.md for constrained decoding, with _top<K> added for another K."""
    return f"{category}_stats{_suffix(decoding)}{'' if k == 5 else f'_top{k}'}.md"


def prediction_text(record, path, index) -> str:
    if "logprobs" in record:  # only ranked modes write them: their items must not be grounded as one text
        mode = "candidates" if "candidates" in record else "constrained"
        raise UserError(f"{path}: record {index} holds ranked catalog items ({mode}): evaluate it with --decoding "
                        f"{mode}")
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
    The candidate protocol adds `candidates` (the catalog rows scored, in the order they were drawn) and `logprobs`
    (each one's completion log-probability), and its topk ranks every candidate.
    """
    k_max = ranking.topk.shape[1]
    rows = []
    for j, i in enumerate(ranking.keep):
        rank, target, top = int(ranking.ranks[j]), int(ranking.targets[j]), ranking.topk[j]
        rows.append({"user": records[i].get("user", i), "target": target, "target_decile": int(deciles[target]),
                     "rank": rank if rank < k_max else None, "topk": top.tolist(), "deciles": deciles[top].tolist(),
                     "valid": None if ranking.valid is None else bool(ranking.valid[j]),
                     "text": None if ranking.texts is None else ranking.texts[j],
                     **({} if ranking.extras is None else ranking.extras[j])})
    return rows


@dataclass
class TrainContext:
    """What the metrics read from the train split besides the lists: each catalog row's training popularity (how
    often it is a train target: ARP, the head and tail, the deciles) and each user's number of train records (the
    user-activity slices, eval/slices.py). `write_eval_files` keeps it as eval_context.json beside the per-user file,
    so that every metric but MGU and DGU is recomputed from the two files alone."""
    popularity: np.ndarray  # (items,) int
    user_records: dict  # {user (str): number of train records}

    @classmethod
    def of(cls, train_records, catalog) -> "TrainContext":
        users = {}
        for r in train_records:
            if "user" in r:
                users[str(r["user"])] = users.get(str(r["user"]), 0) + 1
        return cls(popularity(train_records, catalog), dict(sorted(users.items())))

    def to_json(self, category: str) -> dict:
        return {"category": category, "n_items": len(self.popularity), "popularity": self.popularity.tolist(),
                "user_train_records": self.user_records}

    @classmethod
    def read(cls, path) -> "TrainContext":
        from utils.io import read_json

        obj = read_json(path)
        pop = obj.get("popularity") if isinstance(obj, dict) else None
        users = obj.get("user_train_records") if isinstance(obj, dict) else None
        if not (isinstance(pop, list) and pop and all(isinstance(x, int) and x >= 0 for x in pop)
                and obj.get("n_items") == len(pop) and isinstance(users, dict)
                and all(isinstance(v, int) for v in users.values())):
            raise UserError(f"{path}: not an eval context (n_items, popularity: a count per catalog item, "
                            f"user_train_records) as utils.metrics.write_eval_files writes it")
        return cls(np.array(pop, dtype=np.int64), users)


def write_eval_files(results: dict, ranking: Ranking, context: TrainContext, output_dir, model: str, category: str,
                     records, decoding: str | None = "greedy") -> list[Path]:
    """eval_top{K}[_<decoding>].json with the keys of docs/metrics.md in its order: the metrics, then the decoding
    that made the predictions (None for MostPop: nothing is decoded) and which test records were evaluated (a
    fingerprint: the same for every model evaluated on the same users); then eval_users[_<decoding>].jsonl
    (`user_rows`, for the largest K) and eval_context.json (`context`: the training popularity), from which every
    metric but MGU and DGU (they need the histories) and every paired statistic can be recomputed."""
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
    write_json(Path(output_dir) / CONTEXT_NAME, context.to_json(category), indent=None)  # one line: data
    path = Path(output_dir) / users_name(decoding)
    write_jsonl(path, user_rows(records, ranking, item_deciles(context.popularity)))
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


def recomputed_metrics(users: dict, k: int, context: TrainContext) -> dict:
    """Every metric at K but MGU and DGU (they need the histories) from a per-user file (`read_eval_users`) and the
    training popularity: what eval/recompute.py checks the eval files against, and eval/slices.py computes per
    slice of users. The same functions as the evaluation, on the same lists."""
    if len(users["ranks"]) == 0:
        return {"n": 0}
    ranks, rec = users["ranks"], users["topk"][:, :k]
    targets = np.array([t for _, t in users["keys"]], dtype=np.int64)
    if rec.max() >= len(context.popularity) or targets.max() >= len(context.popularity):
        raise UserError(f"a per-user file names catalog rows beyond the {len(context.popularity)} items of its eval "
                        f"context: another dataset?")
    valid = users["valid"]
    counts = np.bincount(rec.ravel(), minlength=len(context.popularity))
    return {"n": len(ranks), **{key: v for key, v in rank_metrics(ranks, k).items() if key != "MRR"},
            **set_metrics(rec, len(context.popularity), counts),
            "ValidRatio": None if any(v is None for v in valid) else float(np.mean(np.array(valid, dtype=bool))),
            **beyond_accuracy(ranks, rec, targets, k, context.popularity, counts)}
