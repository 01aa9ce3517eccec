"""The report's two figures: metrics per self-play iteration (figure a) and item exposure by popularity decile
(figure b), drawn by eval/report.py into --figs_dir. The exposure figure reads each model's eval_users.jsonl (its
top-K lists and their popularity deciles, as evaluated), and re-grounds the test_result.json of a model that has none
(cached item embeddings; the model loads only for non-catalog titles); eval/stats.py shares its popularity deciles.
"""
import math
from pathlib import Path

import numpy as np

from eval.collect import HIGHER, RowKey, mean_std, model_dirs, read_evals
from eval.mostpop import item_deciles
from utils.io import UserError
from utils.methods import BY_NAME, ITERATION_DIR, ITERATIVE, METHODS


def save_figure(fig, path) -> Path:
    """Write a report figure (its folder made if needed) and free it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

# figure (a) panels: (metric, K)
FIG_PANELS = (("HR", 5), ("NDCG", 5), ("DivRatio", 5), ("ORRatio", 5), ("MGU", 5), ("ValidRatio", 1))
COLORS = {**{m.name: m.color for m in BY_NAME.values()}, "test targets": "lightgray"}


# ------------------------------------------------------------------------------------------------ figure (a)
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics_per_iteration(rows: dict, n_roots: int, category: str, path) -> Path | None:
    """Grid of panels, x = iteration (it0..itN-1, as the tables name them), a line per iterative method, SFT dashed,
    MostPop and the other reference rows (Random, SASRec, GRU4Rec) dotted."""
    series = {}
    for method in ITERATIVE:
        keys = sorted((k for k in rows if k.method == method and k.stage == BY_NAME[method].result_step),
                      key=lambda k: k.iteration)
        if keys:
            series[method] = keys
    flat = {m.name: RowKey(m.name) for m in METHODS if not m.iterative and RowKey(m.name) in rows}
    if not series and not flat:
        return None
    plt = _plt()
    ncols = 3
    nrows = math.ceil(len(FIG_PANELS) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    max_it = max((k.iteration + 1 for keys in series.values() for k in keys), default=1)
    handles = {}
    for ax, (metric, k) in zip(axes.ravel(), FIG_PANELS):
        for method, keys in series.items():
            x = np.array([key.iteration for key in keys])
            stats = np.array([mean_std(rows[key][(metric, k)]) for key in keys])
            mean, std = stats[:, 0], stats[:, 1]
            if np.all(np.isnan(mean)):
                continue
            stage = BY_NAME[method].result_step
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
        ax.set_xlim(-0.5, max_it - 0.5)
        ax.set_xticks(range(max_it), [f"it{i}" for i in range(max_it)])
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(FIG_PANELS):]:
        ax.axis("off")
    sub = f"mean ± std over {n_roots} seeds" if n_roots > 1 else "one run"
    fig.suptitle(f"{category}: metrics per self-play iteration ({sub})", fontsize=13)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=len(handles), frameon=False,
               fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure(fig, path)


# ------------------------------------------------------------------------------------------------ figure (b)
def _shares(deciles, n_bins: int = 10) -> np.ndarray:
    """(n_bins,) share of each popularity bin among the given deciles (any shape)."""
    counts = np.bincount(np.ravel(deciles), minlength=n_bins).astype(np.float64)
    return counts / counts.sum() if counts.sum() > 0 else counts


def decile_shares(popularity, rows, n_bins: int = 10) -> np.ndarray:
    """(n_bins,) share of the recommended item rows (any nesting: per-record lists) in each popularity bin."""
    flat = np.asarray([r for rec in rows for r in np.ravel(rec)], dtype=np.int64)
    return _shares(item_deciles(popularity, n_bins)[flat], n_bins)


def recorded_embedding_model(model_dir) -> str | None:
    """The embedding model an eval file of the directory recorded: the default model, or a built short-name model
    (utils/embedder.py), when it recorded that model's name and hash (utils.grounding.embedding_model_id); a path
    that still exists (older eval files); else None. Nothing is built or downloaded here."""
    from utils.embedder import SHORT_NAMES, embedder_dir
    from utils.grounding import default_embedding_model, embedding_model_id
    from utils.markers import is_done

    known = {embedding_model_id(default_embedding_model()): default_embedding_model()}
    known |= {embedding_model_id(short): short for short, name in SHORT_NAMES.items() if is_done(embedder_dir(name))}
    for ev in read_evals(model_dir).values():
        m = ev.get("embedding_model")
        if isinstance(m, str) and m in known:
            return known[m]
        if isinstance(m, str) and m and Path(m).exists():
            return m
    return None


def top_items(result_path, catalog, k: int = 5, embedding_model: str | None = None) -> np.ndarray:
    """(N, k) catalog rows of the k nearest items to each evaluated record's prediction (as eval/evaluate.py grounds).

    Records whose target is not a catalog item are left out, as in the metrics.
    """
    from utils.data import read_records
    from utils.grounding import ground_titles
    from utils.metrics import evaluated_records, prediction_text
    from utils.prompt import model_contract

    result_path = Path(result_path)
    records = read_records(result_path)
    keep, _, _ = evaluated_records(records, catalog)
    if not keep:
        return np.zeros((0, k), dtype=np.int64)
    title = model_contract(result_path.parent).eval_title  # read as the model's evaluation read it
    titles = [title(prediction_text(records[i], result_path, i)) for i in keep]
    return ground_titles(titles, catalog, k, embedding_model)


def has_lists(model_dir) -> bool:
    """Whether a model directory holds its greedy top-K lists: eval_users.jsonl, or test_result.json to re-ground."""
    from utils.metrics import result_name, users_name

    return (model_dir / users_name()).is_file() or (model_dir / result_name("test")).is_file()


def exposure_sources(run_root, category) -> dict[str, Path]:
    """{label: model directory} for SFT and the last iteration of each iterative method that has its lists."""
    dirs = model_dirs(run_root, category)
    out = {}
    sft = dirs.get(RowKey("SFT"))
    if sft is not None and has_lists(sft):
        out["SFT"] = sft
    for method in ITERATIVE:
        keys = sorted((k for k, d in dirs.items() if k.method == method and k.stage == BY_NAME[method].result_step
                       and has_lists(d)), key=lambda k: k.iteration)
        if keys:
            out[method] = dirs[keys[-1]]
    return out


def exposure_shares(roots, category, data_dir=None, embedding_model=None, k: int = 5):
    """({label: (roots, 10) shares}, test-target shares, notes) for the exposure figure.

    Models' shares come from their eval_users.jsonl where there is one. The test targets' shares come from the test
    split; where the dataset is absent and every model has an eval_users.jsonl, from the targets of the users it
    evaluated (the same ones when the whole test split was evaluated)."""
    from eval.mostpop import popularity as mostpop_popularity
    from utils.data import category_dir, load_catalog, load_split
    from utils.metrics import read_eval_users, users_name
    from utils.prompt import record_target

    sources = [exposure_sources(r, category) for r in roots]
    try:
        data_dir = Path(data_dir) if data_dir else category_dir(category)
        catalog = load_catalog(data_dir)
        popularity = mostpop_popularity(load_split(data_dir, "train"), catalog)  # the one MostPop ranks by
        test_rows = [i for i in (catalog.index(record_target(r)) for r in load_split(data_dir, "test"))
                     if i is not None]
        target_shares = decile_shares(popularity, [test_rows])
    except UserError:
        files = [d / users_name() for s in sources for d in s.values()]
        if not files or not all(f.is_file() for f in files):
            raise
        target_shares = _shares(read_eval_users(files[0], k)["target_deciles"])
    notes = []
    shares = {}
    for label in ("SFT", *ITERATIVE):
        if not all(label in s for s in sources):
            notes.append(f"exposure: no {label} predictions (eval_users.jsonl or test_result.json)"
                         + (" in every run root" if len(roots) > 1 else "") + ": skipped")
            continue
        per_root = []
        its = set()
        for s in sources:
            d = s[label]
            if (d / users_name()).is_file():
                per_root.append(_shares(read_eval_users(d / users_name(), k)["deciles"]))
            else:
                model = embedding_model or recorded_embedding_model(d)
                per_root.append(decile_shares(popularity, top_items(d / "test_result.json", catalog, k, model)))
            m = ITERATION_DIR.fullmatch(d.parent.name)
            if m:
                its.add(int(m.group(1)))
        name = label if not its else f"{label} it{its.pop()}" if len(its) == 1 else f"{label} (last iteration)"
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
    return save_figure(fig, path)
