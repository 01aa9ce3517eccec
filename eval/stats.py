"""Statistics that can tell: paired differences between methods, with intervals and tests within a run and the
spread across seeds.

usage: python -m eval.stats --run_root models --category ML100K [--k 5] [--resamples 1000] [--swaps 2000]
       python -m eval.stats --run_root runs/seed1,runs/seed2,runs/seed3 --category ML100K   (several seeds)
       [--decoding constrained] [--references MostPop,SASRec]
The models compared are those of the report's exposure figure: SFT and the last iteration's result of each method
(greedy decoding), each evaluated on the same test users. Each model's top-K lists come from its eval_users.jsonl
(written with its eval files): no dataset, no embedding model. A model directory without one (an older run) is
re-grounded from its test_result.json, which needs the dataset and the embedding model and gives the same lists.
With --decoding constrained, the models' catalog-constrained lists (eval_users_constrained.jsonl) instead, for the
models that have them. --references MostPop,SASRec adds those rows of each run root (ranked lists of the catalog, one
list for every protocol) and compares every trained model with each.
For each pair (every method against SFT; SPRec against every other method; every trained model against each
reference) and each run root, the paired difference (first - second) of:
  - HR@K and NDCG@K: means of per-user values. Interval: 95% percentile bootstrap, the test users resampled with
    replacement (the same users for both models: paired), 1,000 times. p: the paired randomisation test below
    (swapping a user's two lists flips the sign of their per-user difference).
  - DivRatio@K and ORRatio@K, statistics of the lists as a whole, and TopDecile (the share of recommendations in
    the top popularity decile: items ranked by how often they are training targets, as MostPop ranks them).
    Resampling users with replacement repeats some users' lists, which adds no new item: the distinct count falls (a
    resample holds about 63% of the users), so the bootstrap distribution of DivRatio is shifted and can miss its
    own estimate; ORRatio's top-3 counts are inflated by the repeats. TopDecile is a mean of per-user shares, which
    the bootstrap handles, but it is read with the other two (exposure), so it is treated as they are (its jackknife
    se is then the usual standard error of a mean). Instead:
      interval: estimate +- t(0.975, N-1) * se, se from the paired delete-one jackknife: each user's lists are
        removed from both models in turn, the difference recomputed on the N-1 others (N replicates, no user
        repeated; their common shift of order 1/N does not enter their spread). Exact, with no random draws, and
        fast: deleting user u takes u's counts off the item counts, so all N replicates are one array operation.
        Delete-one rather than subsampling, which would shift DivRatio upwards (fewer users repeat fewer items) and
        need a rate to rescale by that these counts do not have. Checked by simulation (150 synthetic runs of 943
        users x 5 items from a Zipf-popular catalog of 1,664 items): the jackknife se was within 10% of the
        difference's actual spread across runs for each of the three statistics.
      verdict: a paired randomisation test. Under "the two models recommend alike", each user's two lists are
        exchangeable, so each is swapped between the models with probability 1/2 (the same draws for every metric
        and pair, seeded) and the difference recomputed, 2,000 times; p = (1 + #{|swapped| >= |observed|}) /
        (1 + swaps) (the observed assignment counts as one draw, so p is never 0), two-sided. The test needs no
        variance formula, so it holds where the jackknife's normal approximation is rough (ORRatio moves only when a
        top-3 item is in the deleted list).
Corrected for the comparisons of the table: each metric's p-values over the table's pairs are Holm-adjusted (Holm
1979: the i-th smallest of m times m - i + 1, made non-decreasing, capped at 1; it controls the chance of any false
"up" or "down" in the column at 5%, whatever the dependence between the pairs). The verdict reads the adjusted p:
"within noise" where it is >= 0.05. The raw p is shown beside it.
With several run roots (seeds): the mean +- std of the per-seed differences, a 95% t-interval of that mean (seeds as
the sample: it covers training randomness; the test users are the same in every seed), the paired t-test over the
seeds (the per-seed differences against 0, n - 1 degrees of freedom; the interval excludes 0 exactly when its raw p
is below 0.05) with its Holm-adjusted p, which the verdict reads, and in how many seeds the difference is within
noise by that seed's own (Holm-adjusted) test. A difference that is the same in every seed (sd 0: two seeds that
share a model and its lists) is written "identical in every seed", with no interval and no t-test (a zero-width
interval would exclude 0 and a t-test would call it certain); only the seeds' own tests speak to its noise.
Writes <first root>/<C>_stats.md (<C>_stats_constrained.md for constrained decoding, _top<K> added for K other than 5).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from utils.cli import run_cli
from utils.io import UserError, write_text
from utils.metrics import stats_name

METRICS = ("HR", "NDCG", "TopDecile", "DivRatio", "ORRatio")  # TopDecile: share of recommendations in decile 1
USER_MEANS = ("HR", "NDCG")  # means of per-user values: paired bootstrap
LIST_STATS = ("TopDecile", "DivRatio", "ORRatio")  # of the lists as a whole: jackknife interval, randomisation test
ALPHA = 0.05


class Difference(NamedTuple):
    """One paired difference: the estimate on all users, its 95% interval, the randomisation test's p-value and that
    p Holm-adjusted over the table's comparisons (`holm_adjusted`), which the verdict reads when it is there."""
    estimate: float
    low: float
    high: float
    p: float | None = None
    p_holm: float | None = None

    @property
    def within_noise(self) -> bool:
        p = self.p if self.p_holm is None else self.p_holm
        return self.low <= 0 <= self.high if p is None else p >= ALPHA


def verdict(d: Difference) -> str:
    return "within noise" if d.within_noise else "up" if d.estimate > 0 else "down"


# ------------------------------------------------------------------------------------------ HR, NDCG: bootstrap
def per_user_values(model: dict, k: int) -> dict:
    """{HR, NDCG: (N,) each user's value at k}."""
    hit = model["ranks"] < k
    return {"HR": hit.astype(float), "NDCG": hit / np.log2(model["ranks"] + 2.0)}


def bootstrap(model: dict, resamples: int = 1000, seed: int = 0, k: int = 5) -> tuple[dict, dict]:
    """({metric: mean over all users}, {metric: (resamples,) means}) of HR and NDCG. The resamples depend only on the
    user count and the seed, so two models of the same users are paired: computed once per model, differenced per
    pair."""
    n = len(model["ranks"])
    samples = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    per_user = per_user_values(model, k)
    return {m: float(v.mean()) for m, v in per_user.items()}, {m: v[samples].mean(1) for m, v in per_user.items()}


def sign_flip_p(a: dict, b: dict, k: int, draws: np.ndarray) -> dict:
    """{HR, NDCG: two-sided p} of the paired randomisation test of a - b for the means of per-user values: a swapped
    user's difference changes sign, so a draw's sum is (1 - 2 draws) @ d. The same draws as `randomisation_p`."""
    va, vb = per_user_values(a, k), per_user_values(b, k)
    signs = 1.0 - 2.0 * draws.astype(np.float64)
    out = {}
    for m in USER_MEANS:
        d = va[m] - vb[m]
        observed = abs(d.sum())
        out[m] = float((1 + (np.abs(signs @ d) >= observed - 1e-9).sum()) / (1 + len(draws)))
    return out


# ------------------------------------------------------------------------ TopDecile, DivRatio, ORRatio: the lists
def user_item_counts(columns: np.ndarray, n_columns: int) -> np.ndarray:
    """(N, n_columns) how often each user's list holds each item; `columns`: (N, k) item columns in [0, n_columns)."""
    n, k = columns.shape
    flat = np.repeat(np.arange(n) * n_columns, k) + columns.ravel()
    return np.bincount(flat, minlength=n * n_columns).reshape(n, n_columns)


def numerators(counts: np.ndarray, popular) -> dict:
    """{metric: count} of item counts (..., items) and popular-item totals (...): the integers that TopDecile,
    DivRatio and ORRatio divide by N*K (utils.metrics.set_metrics). Integers, so the randomisation test compares
    exactly."""
    top3 = counts.sum(-1) if counts.shape[-1] <= 3 else np.partition(counts, -3, axis=-1)[..., -3:].sum(-1)
    return {"TopDecile": np.asarray(popular), "DivRatio": (counts > 0).sum(-1), "ORRatio": top3}


def delete_one(model: dict, k: int) -> tuple[dict, dict]:
    """({metric: value on all N users}, {metric: (N,) values without user u}) of TopDecile, DivRatio, ORRatio."""
    n = len(model["ranks"])
    _, columns = np.unique(model["topk"][:, :k], return_inverse=True)
    per_user = user_item_counts(columns.reshape(n, k), int(columns.max()) + 1)
    counts, popular = per_user.sum(0), model["popular"][:, :k].sum(1)
    full = {m: float(v) / (n * k) for m, v in numerators(counts, popular.sum()).items()}
    deleted = {m: v / ((n - 1) * k) for m, v in numerators(counts - per_user, popular.sum() - popular).items()}
    return full, deleted


def jackknife_se(replicates) -> float:
    """The delete-one jackknife standard error: sqrt((N-1)/N * sum_u (theta_-u - mean)^2)."""
    r = np.asarray(replicates, dtype=float)
    return float(np.sqrt((len(r) - 1) / len(r) * ((r - r.mean()) ** 2).sum()))


def jackknife_interval(estimate: float, replicates) -> tuple[float, float]:
    """estimate +- t(0.975, N-1) * jackknife se: centred on the estimate, so it always contains it."""
    from scipy.stats import t

    half = float(t.ppf(0.975, len(replicates) - 1)) * jackknife_se(replicates)
    return estimate - half, estimate + half


def swap_draws(n: int, swaps: int = 2000, seed: int = 0) -> np.ndarray:
    """(swaps, n) 0/1: which users' lists the randomisation test swaps between the two models, in each draw."""
    return np.random.default_rng([seed, 1]).integers(0, 2, size=(swaps, n)).astype(np.float32)


def randomisation_p(a: dict, b: dict, k: int, draws: np.ndarray) -> dict:
    """{metric: two-sided p-value} of the paired randomisation test of a - b for TopDecile, DivRatio and ORRatio.

    Swapping user u's lists moves u's counts from a to b and b's to a, so a draw's item counts are a's plus
    draws @ (b's per-user counts - a's): one matrix product for every draw. float32 is exact here: 0/1 times small
    integers, sums below N*K < 2^24."""
    n = len(a["ranks"])
    _, columns = np.unique(np.concatenate([a["topk"][:, :k], b["topk"][:, :k]]), return_inverse=True)
    per_user = user_item_counts(columns.reshape(2 * n, k), int(columns.max()) + 1)
    count_a, count_b = per_user[:n], per_user[n:]
    pop_a, pop_b = a["popular"][:, :k].sum(1), b["popular"][:, :k].sum(1)
    moved = np.rint(draws @ (count_b - count_a).astype(np.float32)).astype(np.int64)
    moved_pop = np.rint(draws @ (pop_b - pop_a).astype(np.float32)).astype(np.int64)
    ca, cb, pa, pb = count_a.sum(0), count_b.sum(0), pop_a.sum(), pop_b.sum()
    obs_a, obs_b = numerators(ca, pa), numerators(cb, pb)
    swap_a, swap_b = numerators(ca + moved, pa + moved_pop), numerators(cb - moved, pb - moved_pop)
    return {m: float((1 + (np.abs(swap_a[m] - swap_b[m]) >= abs(obs_a[m] - obs_b[m])).sum()) / (1 + len(draws)))
            for m in LIST_STATS}


# ------------------------------------------------------------------------------------------------ one pair
def paired_differences(a: dict, b: dict, resamples: int = 1000, seed: int = 0, k: int = 5, swaps: int = 2000,
                       cache=None) -> dict[str, Difference]:
    """{metric: Difference} of model a minus model b; a and b are {"topk": (N, >=k) item rows, "ranks": (N,),
    "popular": (N, >=k) bools (item in the top popularity decile)} over the same N users. `cache` keeps what is
    per model (bootstrap, jackknife; keyed by id) and the swap draws across pairs."""
    n = len(a["ranks"])
    if len(b["ranks"]) != n:
        raise UserError(f"paired statistics need the same test users: {n} against {len(b['ranks'])}")
    if n < 2:
        raise UserError("paired statistics need at least 2 test users")
    cache = {} if cache is None else cache
    for m in (a, b):
        if id(m) not in cache:
            cache[id(m)] = bootstrap(m, resamples, seed, k), delete_one(m, k)
    if ("draws", n) not in cache:
        cache[("draws", n)] = swap_draws(n, swaps, seed)
    ((mean_a, boot_a), (full_a, del_a)), ((mean_b, boot_b), (full_b, del_b)) = cache[id(a)], cache[id(b)]
    p = randomisation_p(a, b, k, cache[("draws", n)]) | sign_flip_p(a, b, k, cache[("draws", n)])
    out = {}
    for metric in USER_MEANS:
        diff = boot_a[metric] - boot_b[metric]
        out[metric] = Difference(mean_a[metric] - mean_b[metric], float(np.percentile(diff, 2.5)),
                                 float(np.percentile(diff, 97.5)), p[metric])
    for metric in LIST_STATS:
        estimate = full_a[metric] - full_b[metric]
        out[metric] = Difference(estimate, *jackknife_interval(estimate, del_a[metric] - del_b[metric]), p[metric])
    return out


# ------------------------------------------------------------------------------------------------ the models
def from_users_file(path, k: int) -> dict:
    """A model's top-k lists from its eval_users.jsonl (utils.metrics.user_rows)."""
    from utils.metrics import read_eval_users

    u = read_eval_users(path, k)
    return {"keys": u["keys"], "topk": u["topk"], "ranks": u["ranks"], "popular": u["deciles"] == 0}


def regrounded(result_path, catalog, deciles, k: int, embedding_model) -> dict:
    """A model's top-k lists re-grounded from its test_result.json, as eval/evaluate.py grounds them."""
    from utils.data import read_records
    from utils.metrics import ground_predictions, prediction_text
    from utils.prompt import model_contract

    records = read_records(result_path)
    predictions = [prediction_text(r, result_path, i) for i, r in enumerate(records)]
    title = model_contract(Path(result_path).parent).eval_title  # read as the model's evaluation read it
    ranking = ground_predictions(records, predictions, catalog, k, embedding_model, title)
    if not ranking.keep:
        raise UserError(f"{result_path}: no test record with a catalog target to compare")
    keys = [(str(records[i].get("user", i)), int(t)) for i, t in zip(ranking.keep, ranking.targets)]
    return {"keys": keys, "topk": ranking.topk, "ranks": ranking.ranks, "popular": deciles[ranking.topk] == 0}


def comparisons(labels, references=()) -> list[tuple[str, str]]:
    """Every method against SFT, SPRec against every other method, then every trained model against each reference
    row (MostPop, SASRec: `--references`)."""
    trained = [m for m in labels if m not in references]
    pairs = [(m, "SFT") for m in trained if m != "SFT"]
    pairs += [("SPRec", m) for m in trained if m not in ("SFT", "SPRec") and "SPRec" in trained]
    pairs += [(m, r) for r in references if r in labels for m in trained]
    return pairs


def holm_adjusted(ps) -> list[float]:
    """Holm's step-down adjustment of m p-values (Holm 1979): sorted ascending, the i-th (from 1) becomes
    min(1, max over j <= i of (m - j + 1) p_(j)); returned in the given order."""
    ps = np.asarray(ps, dtype=float)
    m = len(ps)
    order = np.argsort(ps, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ps[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def with_holm(per_pair: dict) -> dict:
    """{pair: {metric: Difference}} with each metric's p Holm-adjusted over the pairs."""
    out = {pair: dict(ds) for pair, ds in per_pair.items()}
    for metric in METRICS:
        pairs = [pair for pair, ds in per_pair.items() if ds[metric].p is not None]
        for pair, adj in zip(pairs, holm_adjusted([per_pair[pair][metric].p for pair in pairs])):
            out[pair][metric] = per_pair[pair][metric]._replace(p_holm=adj)
    return out


def seeds_t_test(differences) -> float | None:
    """Two-sided p of the paired t-test over seeds: the per-seed differences against 0 (n - 1 degrees of freedom).
    None for differences equal in every seed: there is no spread to test against."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    std = float(d.std(ddof=1))
    if std == 0:
        return None
    return float(2 * t.sf(abs(d.mean()) / (std / np.sqrt(len(d))), len(d) - 1))


def across_seeds(differences) -> tuple[float, float, float, float]:
    """(mean, sample std, 2.5%, 97.5%) of per-seed differences: Student's t-interval of the mean, n - 1 degrees of
    freedom (n >= 2)."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    mean, std = float(d.mean()), float(d.std(ddof=1))
    half = float(t.ppf(0.975, len(d) - 1)) * std / np.sqrt(len(d))
    return mean, std, mean - half, mean + half


def format_p(p: float) -> str:
    """"=" and four decimals; a p that would print as 0 (a t-test over seeds that agree closely) is "<0.0001"."""
    return "<0.0001" if p < 0.00005 else "=" + f"{p:.4f}".rstrip("0").rstrip(".")


def p_text(p: float | None, p_holm: float | None) -> str:
    return ("" if p is None else f" p{format_p(p)}") + ("" if p_holm is None else f" Holm p{format_p(p_holm)}")


def cell(d: Difference) -> str:
    text = f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}]" + p_text(d.p, d.p_holm)
    return text + (" within noise" if d.within_noise else "")


def sources(root, category: str, decoding: str, references) -> dict[str, Path]:
    """{label: model directory}: SFT and each method's last iteration (the report's exposure figure), then the
    reference rows asked for, whose one ranked list stands for every protocol. Constrained decoding takes the models
    that have its lists."""
    from eval.figures import exposure_sources
    from utils.methods import method_dir
    from utils.metrics import users_name

    if decoding == "greedy":
        out = exposure_sources(root, category)
    else:
        out = {label: d for label, d in exposure_sources(root, category).items()
               if (d / users_name(decoding)).is_file()}
    for name in references:
        d = method_dir(Path(root), name, category)
        if not (d / users_name()).is_file():
            raise UserError(f"{d}: no {users_name()} for the reference row {name} (--references)")
        out[name] = d
    return out


@dataclass
class Args:
    """The statistics' options (the command line's --name value; tests build it directly)."""
    run_root: str = "models"  # one run root, or several (seeds) separated by commas
    category: str = "ML100K"
    data_dir: str = ""  # only for re-grounding a model without eval_users.jsonl
    k: int = 5
    resamples: int = 1000
    seed: int = 0
    embedding_model: str = ""  # only for re-grounding; empty: the one each model recorded
    out: str = ""  # default: <first root>/<category>_stats[_<decoding>][_top<k>].md
    swaps: int = 2000
    decoding: str = "greedy"
    references: str | tuple = ""  # "MostPop,SASRec" (fire reads it as a tuple), "MostPop" or a tuple

    @property
    def reference_names(self) -> tuple:
        refs = self.references
        return tuple(refs) if isinstance(refs, (list, tuple)) else tuple(refs.replace(",", " ").split())


def run_stats(roots, a: Args) -> tuple[str, dict]:
    """The paired statistics of the run roots as a markdown text, and the differences themselves."""
    from eval.figures import recorded_embedding_model
    from utils.metrics import result_name, users_name

    category, data_dir, k, resamples, seed, swaps = a.category, a.data_dir, a.k, a.resamples, a.seed, a.swaps
    embedding_model, decoding, references = a.embedding_model, a.decoding, a.reference_names
    if decoding not in ("greedy", "constrained"):
        raise UserError(f"--decoding {decoding}: the paired statistics take greedy or constrained top-K lists")
    dataset = {}  # the catalog and popularity deciles, loaded only for a model without eval_users.jsonl

    def lists(label, model_dir):
        if label in references:
            return from_users_file(model_dir / users_name(), k)
        if decoding != "greedy":
            return from_users_file(model_dir / users_name(decoding), k)
        if (model_dir / users_name()).is_file():
            return from_users_file(model_dir / users_name(), k)
        if not dataset:
            from eval.mostpop import popularity_deciles
            from utils.data import category_dir, load_catalog

            data = Path(data_dir) if data_dir else category_dir(category)
            dataset["catalog"] = load_catalog(data)
            dataset["deciles"] = popularity_deciles(data, dataset["catalog"])
        regrounded_from.add(label)
        return regrounded(model_dir / result_name("test"), dataset["catalog"], dataset["deciles"], k,
                          embedding_model or recorded_embedding_model(model_dir))

    per_root, regrounded_from = [], set()
    for root in roots:
        models = {label: lists(label, d) for label, d in sources(root, category, decoding, references).items()}
        if len({tuple(m["keys"]) for m in models.values()}) > 1:
            raise UserError(f"{root}: the models were evaluated on different test users (another TEST_SAMPLE_SIZE or "
                            f"SEED); paired statistics need the same ones")
        cache = {}  # each model's bootstrap and jackknife once, whatever the number of pairs it is in
        per_root.append(with_holm({(a, b): paired_differences(models[a], models[b], resamples, seed, k, swaps, cache)
                                   for a, b in comparisons(list(models), references)}))
    pairs = [p for p in per_root[0] if all(p in r for r in per_root)]
    seed_p = {}  # several seeds: {metric: {pair: (t-test p, its Holm-adjusted p over the pairs)}}
    if len(roots) > 1:
        for metric in METRICS:
            raw = {pair: seeds_t_test([r[pair][metric].estimate for r in per_root]) for pair in pairs}
            tested = [pair for pair in pairs if raw[pair] is not None]  # Holm over the pairs that have a test
            adjusted = dict(zip(tested, holm_adjusted([raw[pair] for pair in tested]))) if tested else {}
            seed_p[metric] = {pair: (raw[pair], adjusted.get(pair)) for pair in pairs}
    protocol = "" if decoding == "greedy" else f", {decoding} decoding"
    lines = [f"## {category}: paired differences at K={k} (first minus second{protocol}; {len(roots)} run root(s); "
             f"95% intervals over the test users, per root)", "",
             "| first - second | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for a, b in pairs:
        cells = []
        for metric in METRICS:
            values = [r[(a, b)][metric] for r in per_root]
            if len(values) == 1:
                cells.append(cell(values[0]))
            else:
                noisy = f"({sum(v.within_noise for v in values)}/{len(values)} seeds within noise)"
                if len({v.estimate for v in values}) == 1:  # no spread: a t-interval would have zero width
                    cells.append(f"{values[0].estimate:+.4f} identical in every seed {noisy}")
                    continue
                mean, std, lo, hi = across_seeds([v.estimate for v in values])
                noisy = f"({sum(v.within_noise for v in values)}/{len(values)} seeds within noise)"
                p, p_holm = seed_p[metric][(a, b)]
                if p is None:  # no spread: a t-interval would have zero width
                    cells.append(f"{values[0].estimate:+.4f} identical in every seed {noisy}")
                    continue
                mean, std, lo, hi = across_seeds([v.estimate for v in values])
                within = " within noise" if p_holm >= ALPHA else ""
                cells.append(f"{mean:+.4f} ± {std:.4f} [{lo:+.4f}, {hi:+.4f}]{p_text(p, p_holm)}{within} {noisy}")
        lines.append(f"| {a} - {b} | " + " | ".join(cells) + " |")
    lines += ["", f"- HR, NDCG: 95% percentile interval of a paired bootstrap (the test users resampled with "
              f"replacement, the same for both models, {resamples} resamples).",
              "- TopDecile, DivRatio, ORRatio: estimate ± t(0.975, N−1)·se, se from the paired delete-one jackknife "
              "over the N test users (the bootstrap is biased for statistics of the lists as a whole: a repeated "
              "user adds no new item).",
              f"- p (every metric): a paired randomisation test (each user's two lists swapped with probability 1/2, "
              f"{swaps} draws, the same for every metric and pair; two-sided, p = (1 + draws with |difference| ≥ "
              f"|observed|) / (1 + {swaps}), so never below {format_p(1 / (1 + swaps)).lstrip('=')}). Holm p: "
              f"adjusted by Holm's "
              f"method over the {len(pairs)} comparisons of its column; within noise where the Holm p ≥ {ALPHA} (the "
              f"verdict reads the adjusted p, not the raw one).",
              "- TopDecile: share of the top-K recommendations among the 10% of items most frequent as training "
              "targets."]
    if len(roots) > 1:
        lines.append(f"- Across seeds: mean ± std of the per-seed differences [95% t-interval of the mean over the "
                     f"seeds]; p: the paired t-test over the {len(roots)} seeds (the per-seed differences against 0, "
                     f"{len(roots) - 1} degrees of freedom), Holm p: adjusted over the column's comparisons, which "
                     f"the verdict reads; in parentheses, the seeds whose own (Holm-adjusted) test says within noise.")
    if any("identical in every seed" in line for line in lines):
        lines.append("- Identical in every seed: the difference is the same in each seed, so there is no spread to "
                     "make an interval or a t-test from; only the seeds' own tests speak to its noise.")
    if regrounded_from:
        lines.append("- Re-grounded from test_result.json (no eval_users.jsonl): " + ", ".join(sorted(regrounded_from))
                     + ".")
    return "\n".join(lines) + "\n", {"pairs": pairs, "per_root": per_root}


def main(a: Args) -> None:
    from eval.collect import parse_roots

    roots = parse_roots(a.run_root)
    text, _ = run_stats(roots, a)
    path = Path(a.out) if a.out else Path(roots[0]) / stats_name(a.category, a.decoding, a.k)
    write_text(path, text)
    print(text + f"\nwrote {path}")


if __name__ == "__main__":
    run_cli(main)
