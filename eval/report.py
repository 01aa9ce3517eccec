"""Collect the eval files of a run into one Markdown table and draw the per-iteration and exposure figures.

usage: python -m eval.report --run_root models --category ML100K [--figs_dir figs] [--out results.md]
       [--ks 1,5] [--data_dir DIR] [--embedding_model PATH] [--exposure True]
`--run_root a,b,c` (one run root per seed) gives mean ± sample std (ddof=1) over the roots, for the rows present in
every root. The table is printed and written to <run_root>/<Category>_results.md (several roots:
<their common parent>/<Category>_results_mean.md) unless --out says otherwise. Figures go to --figs_dir
(`--figs_dir ""` draws none): <Category>_metrics_per_iteration.png and <Category>_exposure.png. The exposure figure
re-grounds each model's test_result.json (cached item embeddings; the model loads only for non-catalog titles).
Whatever is missing (a baseline, MostPop, later iterations, predictions) is skipped and said so.
The table and figures are those of greedy decoding (the official protocol). Models also evaluated with catalog-
constrained decoding (eval_top{K}_constrained.json, from shell/eval.sh with DECODING=constrained) get a second table
below it: each such model's greedy row, then its constrained row.
"""
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from utils.io import UserError, run_cli, write_text
from utils.metrics import parse_ks

# The methods, in table order (the directory names shell/SPRec.sh's METHOD writes):
# (method, has iterations, stages in order, the stage its label leaves implicit, what a missing one is called)
METHODS = (("MostPop", False, (None,), None, "MostPop baseline"), ("SFT", False, (None,), None, "SFT model"),
           ("SPRec", True, ("SFT", "DPO"), None, "SPRec run"),
           ("DPO", True, ("SFT", "DPO"), "DPO", "DPO baseline"),
           ("DPO+SFT", True, ("SFT", "DPO"), None, "DPO+SFT baseline"),
           ("S-DPO", True, ("SFT", "DPO"), "DPO", "S-DPO baseline"),
           ("DMPO", True, ("SFT", "DPO"), "DPO", "DMPO baseline"),
           ("SemanticDPO", True, ("SFT", "DPO"), "DPO", "semantic-negative DPO baseline"),
           ("GenreSFT", True, ("SFT", "DPO"), "SFT", "genre re-weighted SFT baseline"),
           ("SFT-only", True, ("SFT", "DPO"), "SFT", "SFT-only baseline"))
ITERATIVE = tuple(m[0] for m in METHODS if m[1])
# table columns: (metric key, higher is better)
TABLE_METRICS = (("HR", True), ("NDCG", True), ("DivRatio", True), ("ORRatio", False), ("MGU", False),
                 ("DGU", False), ("ValidRatio", True))
HIGHER = dict(TABLE_METRICS)
# figure (a) panels: (metric, K)
FIG_PANELS = (("HR", 5), ("NDCG", 5), ("DivRatio", 5), ("ORRatio", 5), ("MGU", 5), ("ValidRatio", 1))
# the stage of each iterative method that figure (a) and the exposure figure show: its result, the last stage
FIG_STAGE = {m[0]: m[2][-1] if m[3] is None else m[3] for m in METHODS if m[1]}
COLORS = {"SPRec": "tab:blue", "DPO": "tab:orange", "DPO+SFT": "tab:red", "S-DPO": "tab:purple", "DMPO": "tab:brown",
          "SemanticDPO": "tab:pink", "GenreSFT": "tab:olive", "SFT-only": "tab:green", "SFT": "dimgray",
          "MostPop": "black", "test targets": "lightgray"}
_ITER = re.compile(r"it(\d+)")
_EVAL = re.compile(r"eval_top(\d+)(_constrained)?\.json")  # the names eval/evaluate.py's eval_name gives


# ------------------------------------------------------------------------------------------------ collecting
def row_label(key) -> str:
    method, it, stage = key
    if it is None:
        return method
    implicit = next(m[3] for m in METHODS if m[0] == method)
    return f"{method} it{it}" + ("" if stage == implicit else f" {stage}")


def _sort_key(key):
    method, it, stage = key
    m = [x[0] for x in METHODS].index(method)
    return m, -1 if it is None else it, 0 if stage is None else next(x[2] for x in METHODS if x[0] == method).index(
        stage)


def model_dirs(run_root, category) -> dict:
    """Every model directory of the category under a run root: {(method, iteration|None, stage|None): Path}."""
    root = Path(run_root)
    out = {}
    for method, iterative, stages, *_ in METHODS:
        base = root / method / category
        if not base.is_dir():
            continue
        if not iterative:
            out[(method, None, None)] = base
            continue
        for d in base.iterdir():
            m = _ITER.fullmatch(d.name)
            if m and d.is_dir():
                for stage in stages:
                    if (d / stage).is_dir():
                        out[(method, int(m.group(1)), stage)] = d / stage
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def read_evals(directory, decoding: str = "greedy") -> dict[int, dict]:
    """{K: eval dict} of a model directory's eval files of one decoding mode: eval_top{K}.json for greedy,
    eval_top{K}_constrained.json for constrained."""
    out = {}
    for p in Path(directory).glob("eval_top*.json"):
        m = _EVAL.fullmatch(p.name)
        if not m or bool(m.group(2)) != (decoding == "constrained"):
            continue
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{p}: cannot read eval file: {e}") from None
        if not isinstance(obj, dict):
            raise UserError(f"{p}: expected a JSON object")
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


def format_cell(values, n_roots: int) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "–"
    if n_roots == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}" if not math.isnan(std) else f"{mean:.4f}"


def missing_notes(keys, category) -> list[str]:
    present = {k[0] for k in keys}
    notes = []
    for method, *_, what in METHODS:
        if method not in present:
            notes.append(f"no {what} (nothing evaluated under {method}/{category}): skipped")
    for method in ITERATIVE:
        its = sorted({k[1] for k in keys if k[0] == method})
        if len(its) == 1:
            notes.append(f"{method} has one iteration only")
    return notes


def markdown_table(rows: dict, ks, n_roots: int, label=row_label) -> str:
    header = ["Method"] + [f"{m}@{k} {'↑' if up else '↓'}" for k in ks for m, up in TABLE_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for key, vals in rows.items():
        cells = [label(key)] + [format_cell(vals[(m, k)], n_roots) for k in ks for m, _ in TABLE_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def n_note(collected: list[dict], ks) -> str | None:
    ns = sorted({ev.get("n") for c in collected for evals in c.values() for ev in evals.values()
                 if isinstance(ev.get("n"), int)})
    if not ns:
        return None
    if len(ns) == 1:
        return f"n = {ns[0]} evaluated test records in every row"
    return "evaluated test records differ between rows: n = " + ", ".join(map(str, ns))


def training_budget(run_root, category) -> str | None:
    """Markdown table of what each trained stage cost, from its run config: optimizer steps, SFT records, DPO pairs
    and rejected items per pair (a pair of k rejected items runs k+1 sequences); None when no stage has a config."""
    lines = []
    for key, d in model_dirs(run_root, category).items():
        for stage in ("sft", "dpo"):
            path = d / f"run_config_{stage}.json"
            if not path.is_file():
                continue
            try:
                args = json.loads(path.read_text(encoding="utf-8"))["args"]
            except (OSError, ValueError, KeyError, TypeError):
                raise UserError(f"{path}: cannot read the run config") from None
            sft = stage == "sft"
            cells = [row_label(key), stage.upper(), args.get("steps"), args.get("train_records") if sft else None,
                     None if sft else args.get("pairs"), None if sft else args.get("negatives_per_pair", 1)]
            if sft and "record_weight_mean" in args:
                cells[1] = "SFT, genre re-weighted"
            lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    if not lines:
        return None
    return "\n".join(["| Model | trained stage | optimizer steps | SFT records | DPO pairs | rejected per pair |",
                      "|:---|:---|---:|---:|---:|---:|", *lines])


def build_report(roots, category, ks=(1, 5)) -> tuple[str, dict, list[dict], list[str]]:
    """Markdown text, merged rows, per-root collections and notes for a category over one or more run roots."""
    collected = [collect(r, category) for r in roots]
    for r, c in zip(roots, collected):
        if not c:
            raise UserError(f"no eval_top*.json for {category} under {r} (looked in "
                            f"{', '.join(m[0] + '/' + category for m in METHODS)})")
    rows, notes = merge(collected, ks, [m for m, _ in TABLE_METRICS])
    notes = missing_notes(rows.keys(), category) + notes
    title = f"## {category}: " + (f"{roots[0]}" if len(roots) == 1 else
                                  f"mean ± sample std over {len(roots)} run roots ({', '.join(map(str, roots))})")
    parts = [title, "", markdown_table(rows, ks, len(roots)), ""]
    note = n_note(collected, ks)
    notes_all = ([note] if note else []) + ["↑ higher is better, ↓ lower is better; – = not available"] + notes
    parts += [f"- {n}" for n in notes_all]
    budget = training_budget(roots[0], category)
    if budget:
        where = "" if len(roots) == 1 else f" (of {roots[0]}; the recipe is the same in every root)"
        parts += ["", f"### Training budget per stage{where}", "", budget]
    parts += constrained_section(roots, category, ks, rows)
    return "\n".join(parts) + "\n", rows, collected, notes


def constrained_section(roots, category, ks, greedy_rows: dict) -> list[str]:
    """Markdown lines: for each model with constrained-decoding eval files (in every root), its greedy row then its
    constrained row; nothing when there are none."""
    collected = [collect(r, category, "constrained") for r in roots]
    if not any(collected):
        return []
    rows, notes = merge(collected, ks, [m for m, _ in TABLE_METRICS])
    paired = {}
    for key, vals in rows.items():
        if key in greedy_rows:
            paired[(key, "greedy")] = greedy_rows[key]
        paired[(key, "constrained")] = vals
    table = markdown_table(paired, ks, len(roots), label=lambda kd: f"{row_label(kd[0])}, {kd[1]}")
    return ["", f"### {category}: greedy against catalog-constrained decoding", "", table, "",
            "- greedy (official): the generated title grounded to its nearest catalog item, the top-K that item and "
            "its K-1 nearest neighbours by sentence embedding",
            "- constrained: beam search over the catalog's titles, the top-K the K beams by sequence log-probability "
            "(every one a catalog item: ValidRatio 1)"] + [f"- constrained: {n}" for n in notes]


# ------------------------------------------------------------------------------------------------ figure (a)
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics_per_iteration(rows: dict, n_roots: int, category: str, path) -> Path | None:
    """Grid of panels, x = iteration (1..N), a line per iterative method, SFT dashed, MostPop dotted."""
    series = {}
    for method in ITERATIVE:
        keys = sorted((k for k in rows if k[0] == method and k[2] == FIG_STAGE[method]), key=lambda k: k[1])
        if keys:
            series[method] = keys
    flat = {m: (m, None, None) for m in ("SFT", "MostPop") if (m, None, None) in rows}
    if not series and not flat:
        return None
    plt = _plt()
    ncols = 3
    nrows = math.ceil(len(FIG_PANELS) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    max_it = max((k[1] + 1 for keys in series.values() for k in keys), default=1)
    handles = {}
    for ax, (metric, k) in zip(axes.ravel(), FIG_PANELS):
        for method, keys in series.items():
            x = np.array([key[1] + 1 for key in keys])
            stats = np.array([mean_std(rows[key][(metric, k)]) for key in keys])
            mean, std = stats[:, 0], stats[:, 1]
            if np.all(np.isnan(mean)):
                continue
            stage = FIG_STAGE[method]
            label = f"{method} ({stage} stage)" if method == "SPRec" else method
            (h,) = ax.plot(x, mean, marker="o", color=COLORS[method], label=label, lw=1.8)
            handles.setdefault(label, h)
            if n_roots > 1 and not np.all(np.isnan(std)):
                s = np.nan_to_num(std)
                ax.fill_between(x, mean - s, mean + s, color=COLORS[method], alpha=0.18, lw=0)
                ax.errorbar(x, mean, yerr=s, fmt="none", ecolor=COLORS[method], capsize=3, lw=1)
        for method, key in flat.items():
            mean, std = mean_std(rows[key][(metric, k)])
            if math.isnan(mean):
                continue
            ls = "--" if method == "SFT" else ":"
            h = ax.axhline(mean, color=COLORS[method], ls=ls, lw=1.5, label=method)
            handles.setdefault(method, h)
            if n_roots > 1 and not math.isnan(std):
                ax.axhspan(mean - std, mean + std, color=COLORS[method], alpha=0.08, lw=0)
        arrow = "↑" if HIGHER[metric] else "↓"
        ax.set_title(f"{metric}@{k} {arrow} ({'higher' if HIGHER[metric] else 'lower'} is better)", fontsize=11)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{metric}@{k}")
        ax.set_xlim(0.5, max_it + 0.5)
        ax.set_xticks(range(1, max_it + 1))
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(FIG_PANELS):]:
        ax.axis("off")
    sub = f"mean ± std over {n_roots} seeds" if n_roots > 1 else "one run"
    fig.suptitle(f"{category}: metrics per self-play iteration ({sub})", fontsize=13)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), frameon=False,
               fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ figure (b)
def item_deciles(popularity, n_bins: int = 10) -> np.ndarray:
    """(items,) popularity bin of each catalog row: 0 = the most popular 10% of items.

    Items are sorted by popularity, descending, ties broken by the smaller row (catalog rows are in item id order);
    the item at sorted position p falls in bin floor(p * n_bins / items).
    """
    pop = np.asarray(popularity)
    n = len(pop)
    order = np.lexsort((np.arange(n), -pop))
    bins = np.empty(n, dtype=np.int64)
    bins[order] = np.arange(n) * n_bins // n
    return bins


def decile_shares(popularity, rows, n_bins: int = 10) -> np.ndarray:
    """(n_bins,) share of the recommended item rows (any nesting: per-record lists) in each popularity bin."""
    flat = np.asarray([r for rec in rows for r in np.ravel(rec)], dtype=np.int64)
    counts = np.bincount(item_deciles(popularity, n_bins)[flat], minlength=n_bins).astype(np.float64)
    return counts / counts.sum() if counts.sum() > 0 else counts


def recorded_embedding_model(model_dir) -> str | None:
    """The embedding model an eval file of the directory recorded, when that path still exists."""
    for ev in read_evals(model_dir).values():
        m = ev.get("embedding_model")
        if isinstance(m, str) and m and Path(m).exists():
            return m
    return None


def top_items(result_path, catalog, k: int = 5, embedding_model: str | None = None) -> np.ndarray:
    """(N, k) catalog rows of the k nearest items to each evaluated record's prediction (as eval/evaluate.py grounds).

    Records whose target is not a catalog item are left out, as in the metrics.
    """
    from eval.evaluate import prediction_text
    from utils.data import read_records
    from utils.grounding import ground_titles
    from utils.metrics import evaluated_records
    from utils.prompt import parse_title

    result_path = Path(result_path)
    records = read_records(result_path)
    keep, _, _ = evaluated_records(records, catalog)
    if not keep:
        return np.zeros((0, k), dtype=np.int64)
    titles = [parse_title(prediction_text(records[i], result_path, i)) for i in keep]
    return ground_titles(titles, catalog, k, embedding_model)


def exposure_sources(run_root, category) -> dict[str, Path]:
    """{label: test_result.json} for SFT and the last iteration of each iterative method that has predictions."""
    dirs = model_dirs(run_root, category)
    out = {}
    sft = dirs.get(("SFT", None, None))
    if sft is not None and (sft / "test_result.json").is_file():
        out["SFT"] = sft / "test_result.json"
    for method in ITERATIVE:
        keys = sorted((k for k, d in dirs.items() if k[0] == method and k[2] == FIG_STAGE[method]
                       and (d / "test_result.json").is_file()), key=lambda k: k[1])
        if keys:
            out[method] = dirs[keys[-1]] / "test_result.json"
    return out


def exposure_shares(roots, category, data_dir=None, embedding_model=None, k: int = 5):
    """({label: (roots, 10) shares}, test-target shares, notes) for the exposure figure."""
    from eval.mostpop import popularity as mostpop_popularity
    from utils.data import category_dir, load_catalog, load_split
    from utils.prompt import record_target

    data_dir = Path(data_dir) if data_dir else category_dir(category)
    catalog = load_catalog(data_dir)
    popularity = mostpop_popularity(load_split(data_dir, "train"), catalog)  # the one MostPop ranks by
    test_rows = [i for i in (catalog.index(record_target(r)) for r in load_split(data_dir, "test")) if i is not None]
    target_shares = decile_shares(popularity, [test_rows])
    sources = [exposure_sources(r, category) for r in roots]
    notes = []
    shares = {}
    for label in ("SFT", *ITERATIVE):
        if not all(label in s for s in sources):
            notes.append(f"exposure: no {label} predictions (test_result.json)"
                         + (" in every run root" if len(roots) > 1 else "") + ": skipped")
            continue
        per_root = []
        its = set()
        for s in sources:
            p = s[label]
            model = embedding_model or recorded_embedding_model(p.parent)
            per_root.append(decile_shares(popularity, top_items(p, catalog, k, model)))
            m = _ITER.fullmatch(p.parent.parent.name)
            if m:
                its.add(int(m.group(1)) + 1)
        name = label if not its else f"{label} (iteration {its.pop()})" if len(its) == 1 else \
            f"{label} (last iteration)"
        shares[name] = np.array(per_root)
    return shares, target_shares, notes


def plot_exposure(shares: dict, target_shares, category: str, path, k: int = 5) -> Path | None:
    if not shares:
        return None
    plt = _plt()
    n_bins = len(target_shares)
    groups = [("test targets", target_shares[None, :])] + list(shares.items())
    width = 0.8 / len(groups)
    x = np.arange(1, n_bins + 1)
    fig, ax = plt.subplots(figsize=(10 if len(groups) <= 5 else 14, 4.8))
    for j, (label, values) in enumerate(groups):
        mean = values.mean(0)
        err = values.std(0, ddof=1) if len(values) > 1 else None
        base = label.split(" (")[0]
        ax.bar(x + (j - (len(groups) - 1) / 2) * width, 100 * mean, width, label=label,
               color=COLORS.get(base, None), edgecolor="black" if label == "test targets" else None,
               hatch="//" if label == "test targets" else None, linewidth=0.6,
               yerr=None if err is None else 100 * err, capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{i}" for i in x])
    ax.set_xlabel("item popularity decile (1 = the 10% of items most frequent as training targets)")
    ax.set_ylabel(f"share of top-{k} recommendations\n(or of test targets), %")
    n_roots = max(len(v) for v in shares.values())
    sub = f", mean ± std over {n_roots} seeds" if n_roots > 1 else ""
    ax.set_title(f"{category}: item exposure by popularity decile (top-{k}{sub})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, ncol=1 if len(groups) <= 5 else 2, loc="upper right")  # the popular deciles are left
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ CLI
def parse_roots(run_root) -> list[Path]:
    items = run_root if isinstance(run_root, list | tuple) else str(run_root).split(",")
    roots = [Path(str(r).strip()) for r in items if str(r).strip()]
    if not roots:
        raise UserError("--run_root is empty")
    for r in roots:
        if not r.is_dir():
            raise UserError(f"run root {r} does not exist")
    return roots


def default_out(roots, category) -> Path:
    if len(roots) == 1:
        return roots[0] / f"{category}_results.md"
    common = Path(os.path.commonpath([str(r.resolve()) for r in roots]))
    return common / f"{category}_results_mean.md"


def run(run_root: str = "models", category: str = "ML100K", figs_dir: str = "figs", out: str = "", ks="1,5",
        data_dir: str = "", embedding_model: str = "", exposure: bool = True):
    from utils.data import check_category_name

    check_category_name(category)
    roots = parse_roots(run_root)
    ks = parse_ks(ks, flag="--ks")
    text, rows, _, notes = build_report(roots, category, ks)
    print(text, end="")
    out_path = Path(out) if out else default_out(roots, category)
    write_text(out_path, text)
    print(f"[report] table written to {out_path}")
    if not figs_dir:
        return
    figs = Path(figs_dir)
    p = plot_metrics_per_iteration(rows, len(roots), category, figs / f"{category}_metrics_per_iteration.png")
    print(f"[report] figure written to {p}" if p else "[report] nothing to plot per iteration: figure skipped")
    if not exposure:
        return
    try:
        shares, target_shares, ex_notes = exposure_shares(roots, category, data_dir or None, embedding_model or None)
    except UserError as e:
        print(f"[report] exposure figure skipped: {e}")
        return
    for n in ex_notes:
        print(f"note: {n}")
    p = plot_exposure(shares, target_shares, category, figs / f"{category}_exposure.png")
    print(f"[report] figure written to {p}" if p else "[report] no predictions to plot exposure: figure skipped")


if __name__ == "__main__":
    run_cli(run)
