"""Statistics that can tell: paired differences between methods, with bootstrap intervals within a run and the
spread across seeds.

usage: python -m eval.stats --run_root models --category ML100K [--k 5] [--resamples 1000]
       python -m eval.stats --run_root runs/seed1,runs/seed2,runs/seed3 --category ML100K   (several seeds)
The models compared are those of the report's exposure figure: SFT and the last iteration's result of each method
(greedy decoding), each evaluated on the same test users. For each pair (every method against SFT; SPRec against
every other method) and each run root:
  - the paired difference (first - second) of HR@K, NDCG@K, the share of recommendations in the top popularity decile
    (items ranked by how often they are training targets, as MostPop ranks them), DivRatio@K and ORRatio@K;
  - a 95% percentile bootstrap interval: the test users are resampled with replacement (the same users for both
    models: paired), the metrics recomputed on each resample, 1,000 times; "within noise" where it covers 0.
With several run roots (seeds): the mean +- std of the per-seed differences, a 95% t-interval of that mean (seeds as
the sample: it covers training randomness; the test users are the same in every seed), and in how many seeds the
bootstrap interval covers 0. Writes <first root>/<C>_stats.md.
"""
from pathlib import Path

import numpy as np

from utils.io import UserError, run_cli, write_text

METRICS = ("HR", "NDCG", "TopDecile", "DivRatio", "ORRatio")  # TopDecile: share of recommendations in decile 1


def resampled_metrics(topk: np.ndarray, ranks: np.ndarray, top_decile: np.ndarray, k: int, samples) -> dict:
    """{metric: (resamples,) values} of one model over the given user resamples ((resamples, N) indices)."""
    from utils.metrics import set_metrics

    hit = ranks < k
    per_user = {"HR": hit.astype(float), "NDCG": hit / np.log2(ranks + 2.0),
                "TopDecile": np.isin(topk[:, :k], top_decile).mean(1)}
    out = {m: v[samples].mean(1) for m, v in per_user.items()}
    n_items = int(topk.max()) + 1  # bincount length only: items never recommended add nothing
    sets = [set_metrics(topk[idx, :k], n_items) for idx in samples]
    out["DivRatio"] = np.array([s["DivRatio"] for s in sets])
    out["ORRatio"] = np.array([s["ORRatio"] for s in sets])
    return out


def bootstrap(model: dict, resamples: int = 1000, seed: int = 0, k: int = 5) -> tuple[dict, dict]:
    """(metrics on all users, metrics on each resample) of one model. The resamples depend only on the user count
    and the seed, so two models of the same users are paired: computed once per model, differenced per pair."""
    n = len(model["ranks"])
    samples = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    args = model["topk"], model["ranks"], model["top_decile"], k
    return resampled_metrics(*args, np.arange(n)[None, :]), resampled_metrics(*args, samples)


def paired_differences(a: dict, b: dict, resamples: int = 1000, seed: int = 0, k: int = 5, boot=None) -> dict:
    """{metric: (difference on all users, 2.5th, 97.5th percentile of the bootstrap differences)} of model a minus
    model b; a and b are {"topk": (N, >=k) rows, "ranks": (N,), "top_decile": rows} over the same N users. `boot`
    caches `bootstrap` per model (keyed by id)."""
    n = len(a["ranks"])
    if len(b["ranks"]) != n:
        raise UserError(f"paired statistics need the same test users: {n} against {len(b['ranks'])}")
    boot = {} if boot is None else boot
    for m in (a, b):
        if id(m) not in boot:
            boot[id(m)] = bootstrap(m, resamples, seed, k)
    (full_a, boot_a), (full_b, boot_b) = boot[id(a)], boot[id(b)]
    out = {}
    for metric in METRICS:
        diff = boot_a[metric] - boot_b[metric]
        out[metric] = (float(full_a[metric][0] - full_b[metric][0]), float(np.percentile(diff, 2.5)),
                       float(np.percentile(diff, 97.5)))
    return out


def model_rankings(result_path, catalog, k: int, embedding_model, top_decile) -> dict:
    """The evaluated users' top-k catalog rows and target ranks of one model, as eval/evaluate.py computes them."""
    from utils.data import read_records
    from utils.metrics import ground_predictions, prediction_text

    records = read_records(result_path)
    predictions = [prediction_text(r, result_path, i) for i, r in enumerate(records)]
    keep, _, ranks, topk, _ = ground_predictions(records, predictions, catalog, k, embedding_model)
    if not keep:
        raise UserError(f"{result_path}: no test record with a catalog target to compare")
    users = [str(records[i].get("user", i)) + "\t" + str(records[i].get("output", "")) for i in keep]
    return {"topk": topk, "ranks": ranks, "top_decile": top_decile, "users": users}


def comparisons(labels) -> list[tuple[str, str]]:
    """Every method against SFT, and SPRec against every other method."""
    pairs = [(m, "SFT") for m in labels if m != "SFT"]
    pairs += [("SPRec", m) for m in labels if m not in ("SFT", "SPRec") and "SPRec" in labels]
    return pairs


def across_seeds(differences) -> tuple[float, float, float, float]:
    """(mean, sample std, 2.5%, 97.5%) of per-seed differences: Student's t-interval of the mean, n - 1 degrees of
    freedom (n >= 2)."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(t.ppf(0.975, len(d) - 1)) * std / np.sqrt(len(d))
    return mean, std, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    return "within noise" if low <= 0 <= high else "up" if low > 0 else "down"


def run_stats(roots, category: str, data_dir: str = "", k: int = 5, resamples: int = 1000, seed: int = 0,
              embedding_model: str = "") -> tuple[str, dict]:
    from eval.figures import exposure_sources, item_deciles, recorded_embedding_model
    from eval.mostpop import popularity
    from utils.data import category_dir, load_catalog, load_split

    data = Path(data_dir) if data_dir else category_dir(category)
    catalog = load_catalog(data)
    deciles = item_deciles(popularity(load_split(data, "train"), catalog))
    top_decile = np.flatnonzero(deciles == 0)
    per_root = []
    for root in roots:
        sources = exposure_sources(root, category)
        models = {label: model_rankings(path, catalog, k, embedding_model or recorded_embedding_model(path.parent),
                                        top_decile) for label, path in sources.items()}
        users = {label: m["users"] for label, m in models.items()}
        if len({tuple(u) for u in users.values()}) > 1:
            raise UserError(f"{root}: the models were evaluated on different test users (another TEST_SAMPLE_SIZE or "
                            f"SEED); paired statistics need the same ones")
        cache = {}  # each model's bootstrap once, whatever the number of pairs it is in
        per_root.append({(a, b): paired_differences(models[a], models[b], resamples, seed, k, cache)
                         for a, b in comparisons(list(models))})
    pairs = [p for p in per_root[0] if all(p in r for r in per_root)]
    lines = [f"## {category}: paired differences at K={k} (first minus second; {len(roots)} run root(s); 95% "
             f"bootstrap interval over test users, {resamples} resamples, per root)", "",
             "| first - second | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for a, b in pairs:
        cells = []
        for metric in METRICS:
            values = [r[(a, b)][metric] for r in per_root]
            if len(values) == 1:
                d, lo, hi = values[0]
                cells.append(f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" + (" within noise" if lo <= 0 <= hi else ""))
            else:
                mean, std, lo, hi = across_seeds([v[0] for v in values])
                noisy = sum(v[1] <= 0 <= v[2] for v in values)
                within = " within noise" if lo <= 0 <= hi else ""
                cells.append(f"{mean:+.4f} ± {std:.4f} [{lo:+.4f}, {hi:+.4f}]{within} "
                             f"({noisy}/{len(values)} seeds within noise)")
        lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    across = ("" if len(roots) == 1 else "Across seeds: mean ± std of the per-seed differences [95% t-interval of the "
              "mean over the seeds]; in parentheses, the seeds whose own bootstrap interval covers 0.")
    lines += ["", "TopDecile: share of the top-K recommendations among the 10% of items most frequent as training "
              "targets. " + across]
    return "\n".join(lines) + "\n", {"pairs": pairs, "per_root": per_root}


def run(run_root: str = "models", category: str = "ML100K", data_dir: str = "", k: int = 5, resamples: int = 1000,
        seed: int = 0, embedding_model: str = "", out: str = ""):
    from eval.report import parse_roots

    roots = parse_roots(run_root)
    text, _ = run_stats(roots, category, data_dir, k, resamples, seed, embedding_model)
    path = Path(out) if out else Path(roots[0]) / f"{category}_stats.md"
    write_text(path, text)
    print(text + f"\nwrote {path}")


if __name__ == "__main__":
    run_cli(run)
