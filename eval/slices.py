"""Every metric per slice of the test users: by the target's popularity decile and by how active the user is, from the
committed per-user files alone (eval_users.jsonl and eval_context.json; no dataset, no model).

usage: python -m eval.slices --run_root results/seeds/seed42,results/seeds/seed43 --category ML100K [--k 5]
       [--out DIR] [--figs_dir figs]
A model can improve overall and get worse on rare targets (RecList's slices): does debiasing cost accuracy on popular
targets, does it buy it on the tail? The models are the statistics' (eval/stats.py: SFT and the last iteration of each
method), and MostPop where the run has it. Slices:
  - target decile: the users whose target is in training-popularity decile d (1 = the 10% of items most often a
    train target, as eval_users.jsonl records it);
  - user activity: the users in thirds by their number of train records (eval_context.json; ties stay together), the
    users with the shortest training histories first. On ML-100K every test prompt shows 10 history items (the
    prompt's window), so the prompt's history length does not vary; how much of the user the model trained on does.
For each slice and model, every metric of utils.metrics.recomputed_metrics (all but MGU and DGU, which need the test
histories) at K, per run root; the mean ± sample std over the roots. Writes <C>_slices.json (every metric, every
root), <C>_slices.md (the main metrics as tables) into --out (default: the roots' common parent) and the figure
<C>_hr_by_target_decile.png (HR@K per target decile, a bar per model: the mean over the roots, whiskers from the
lowest to the highest root) into --figs_dir
(`--figs_dir ""` draws none).
"""
import math
import os
from pathlib import Path

import numpy as np

from utils.cli import run_cli
from utils.io import UserError, write_json, write_text

TABLES = ("HR", "NDCG", "MRR", "ARP", "TailShare", "Coverage")  # the metrics the Markdown shows; the JSON has all
ACTIVITY = ("fewest", "middle", "most")  # thirds of the users by train records


def models_of(root, category) -> dict[str, Path]:
    """{label: model directory} with a per-user file: MostPop when present, then the statistics' models."""
    from eval.collect import RowKey, model_dirs
    from eval.figures import exposure_sources
    from utils.metrics import users_name

    out = {}
    mostpop = model_dirs(root, category).get(RowKey("MostPop"))
    if mostpop is not None:
        out["MostPop"] = mostpop
    out |= exposure_sources(root, category)
    return {label: d for label, d in out.items() if (d / users_name()).is_file()}


def activity_groups(counts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(N,) 0, 1, 2: thirds of the users by train records, cut at the 1/3 and 2/3 quantiles so that equal counts
    share a group; and each group's label with its range of counts."""
    cuts = np.quantile(counts, [1 / 3, 2 / 3])
    group = np.searchsorted(cuts, counts, side="left")  # count <= first cut: 0; <= second: 1; else 2
    labels = []
    for g, name in enumerate(ACTIVITY):
        c = counts[group == g]
        labels.append(f"{name} ({c.min()}–{c.max()} train records)" if len(c) else f"{name} (none)")
    return group, labels


def subset(users: dict, mask: np.ndarray) -> dict:
    idx = np.flatnonzero(mask)
    return {"keys": [users["keys"][i] for i in idx], "topk": users["topk"][idx], "ranks": users["ranks"][idx],
            "valid": [users["valid"][i] for i in idx]}


def slice_metrics(model_dir: Path, k: int) -> dict:
    """{dimension: {slice label: metrics}} of one model: the users of each target decile and activity group."""
    from utils.metrics import CONTEXT_NAME, TrainContext, read_eval_users, recomputed_metrics, users_name

    if not (model_dir / CONTEXT_NAME).is_file():
        raise UserError(f"{model_dir}: no {CONTEXT_NAME} beside its per-user file (python -m eval.recompute "
                        f"--add_contexts True --write True adds it)")
    users = read_eval_users(model_dir / users_name(), k)
    context = TrainContext.read(model_dir / CONTEXT_NAME)
    out = {"all users": {"all": recomputed_metrics(users, k, context)}, "target decile": {}, "user activity": {}}
    for d in range(10):
        out["target decile"][str(d + 1)] = recomputed_metrics(subset(users, users["target_deciles"] == d), k, context)
    counts = np.array([context.user_records.get(str(u), 0) for u, _ in users["keys"]])
    group, labels = activity_groups(counts)
    for g, label in enumerate(labels):
        out["user activity"][label] = recomputed_metrics(subset(users, group == g), k, context)
    return out


def collect_slices(roots, category, k: int) -> dict:
    """{dimension: {slice: {model: {metric: [value per root]}}}} for the models present in every root."""
    per_root = [{label: slice_metrics(d, k) for label, d in models_of(r, category).items()} for r in roots]
    labels = [m for m in per_root[0] if all(m in r for r in per_root)]
    if not labels:
        raise UserError(f"no model with a per-user file in every run root ({', '.join(map(str, roots))})")
    out = {}
    for dim, slices in per_root[0][labels[0]].items():
        out[dim] = {}
        for s in slices:
            if dim == "user activity":  # labels carry count ranges; the users are the same in every root
                if any(list(r[m][dim]) != list(slices) for r in per_root for m in labels):
                    raise UserError("the run roots evaluated different users: their activity groups differ")
            out[dim][s] = {m: {key: [r[m][dim][s].get(key) for r in per_root] for key in per_root[0][m][dim][s]}
                           for m in labels}
    return out


def _cell(values) -> str:
    """mean ± sample std of the roots' values (None: the slice has no user, or the metric no value)."""
    from eval.collect import mean_std

    mean, std = mean_std([math.nan if x is None else x for x in values])
    return "–" if math.isnan(mean) else f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def markdown(slices: dict, roots, category, k: int) -> str:
    n_roots = len(roots)
    over = "one run root" if n_roots == 1 else f"mean ± sample std over {n_roots} run roots"
    lines = [f"## {category}: metrics per slice of the test users at K={k} ({over}: {', '.join(map(str, roots))})", ""]
    for dim in ("target decile", "user activity"):
        names = list(slices[dim])
        models = list(next(iter(slices[dim].values())))
        n = {s: slices[dim][s][models[0]]["n"][0] for s in names}
        lines += [f"### By {dim}", "", "users per slice: " + ", ".join(f"{s}: {n[s]}" for s in names), ""]
        for metric in TABLES:
            lines += [f"**{metric}@{k}**", "", "| Model | " + " | ".join(names) + " |",
                      "|:---|" + "---:|" * len(names)]
            lines += ["| " + m + " | " + " | ".join(_cell(slices[dim][s][m].get(metric, [None])) for s in names)
                      + " |" for m in models]
            lines.append("")
    lines += ["- Target decile d: the users whose target is in training-popularity decile d (1 = the 10% of items "
              "most often a train target). User activity: the users in thirds by their number of train records.",
              f"- Every metric of docs/metrics.md but MGU and DGU, per slice and run root: {category}_slices.json. A "
              f"slice of few users (the rare deciles) has a wide spread: read its differences with its n."]
    return "\n".join(lines) + "\n"


def plot_hr_by_decile(slices: dict, category: str, k: int, path) -> Path:
    from eval.figures import COLORS, _plt, save_figure

    plt = _plt()
    deciles = list(slices["target decile"])
    models = list(slices["target decile"][deciles[0]])
    n = [slices["target decile"][d][models[0]]["n"][0] for d in deciles]
    width = 0.8 / len(models)
    x = np.arange(len(deciles))
    fig, ax = plt.subplots(figsize=(11, 4.8))
    n_roots = 1
    for j, m in enumerate(models):
        hr = [[v for v in slices["target decile"][d][m].get("HR", []) if v is not None] for d in deciles]
        n_roots = max(n_roots, *map(len, hr))
        mean = np.array([np.mean(v) if v else np.nan for v in hr])  # nan: a decile without users, no bar
        # whiskers from the lowest to the highest root: a rate never drawn below 0, as mean ± std would be
        low, high = (np.array([f(v) if v else np.nan for v in hr]) for f in (min, max))
        err = np.stack([mean - low, high - mean]) if n_roots > 1 else None
        ax.bar(x + (j - (len(models) - 1) / 2) * width, 100 * mean, width, label=m, color=COLORS.get(m),
               yerr=None if err is None else 100 * err, capsize=2, error_kw={"lw": 0.8})
    ax.set_xticks(x, [f"{d}\n(n={c})" for d, c in zip(deciles, n)])
    ax.set_xlabel("popularity decile of the user's test target (1 = the 10% of items most often a training target)")
    ax.set_ylabel(f"HR@{k}, %")
    sub = f"bars: mean over {n_roots} seeds; whiskers: the lowest and the highest seed" if n_roots > 1 else "one run"
    ax.set_title(f"{category}: HR@{k} by the target's popularity decile ({sub})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def run(run_root: str = "models", category: str = "ML100K", k: int = 5, out: str = "", figs_dir: str = "figs"):
    from eval.collect import parse_roots
    from utils.data import check_category_name

    check_category_name(category)
    roots = parse_roots(run_root)
    slices = collect_slices(roots, category, k)
    out_dir = Path(out) if out else roots[0] if len(roots) == 1 else \
        Path(os.path.relpath(os.path.commonpath([str(r.resolve()) for r in roots])))
    text = markdown(slices, roots, category, k)
    write_text(out_dir / f"{category}_slices.md", text)
    write_json(out_dir / f"{category}_slices.json", {"category": category, "k": k, "run_roots": [str(r) for r in roots],
                                                     "slices": slices}, indent=None)  # data: one line
    print(text + f"\nwrote {out_dir / f'{category}_slices.md'} and {category}_slices.json")
    if figs_dir:
        print(f"wrote {plot_hr_by_decile(slices, category, k, Path(figs_dir) / f'{category}_hr_by_target_decile.png')}")


if __name__ == "__main__":
    run_cli(run)
