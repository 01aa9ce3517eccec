"""Collect the eval files of a run into one Markdown table, and draw the figures (eval/figures.py).

usage: python -m eval.report --run_root models --category ML100K [--figs_dir figs] [--out results.md]
       [--ks 1,5] [--data_dir DIR] [--embedding_model PATH] [--exposure True]
`--run_root a,b,c` (one run root per seed) gives mean ± sample std (ddof=1) over the roots, for the rows present in
every root. The table is printed and written to <run_root>/<Category>_results.md (several roots:
<their common parent>/<Category>_results_mean.md) unless --out says otherwise. Figures go to --figs_dir
(`--figs_dir ""` draws none): <Category>_metrics_per_iteration.png and <Category>_exposure.png. The exposure figure
reads each model's eval_users.jsonl, or re-grounds its test_result.json when it has none (cached item embeddings;
the model loads only for non-catalog titles).
Below it, the beyond-accuracy table at the largest K (MRR, item coverage, Gini, entropy, ARP, tail share, HR per
head/mid/tail target group and PopREO; docs/metrics.md), for the models whose eval files hold them.
Then: what each trained stage cost and each iteration's seconds (run configs), and what each model answers
(distinct answers, the most common one and its share, from the per-user lists): of the first run root.
Whatever is missing (a baseline, MostPop, later iterations, predictions) is skipped and said so.
The table and figures are those of greedy decoding (the official protocol). Models also evaluated with catalog-
constrained decoding (eval_top{K}_constrained.json, from shell/eval.sh with DECODING=constrained) get a second table
below it: each such model's greedy row, then its constrained row.
"""
import math
import os
from pathlib import Path

from eval.collect import (
    BEYOND_METRICS,
    TABLE_METRICS,
    answer_counts,
    collect,
    mean_std,
    merge,
    model_dirs,
    parse_roots,
    row_label,
)
from utils.cli import run_cli
from utils.io import UserError, read_json, write_text
from utils.methods import ITERATIVE, METHODS, iteration_dirs, method_dir
from utils.metrics import parse_ks, read_eval_users, users_name


def format_cell(values, n_roots: int) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "–"
    if n_roots == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.4f}" if not math.isnan(std) else f"{mean:.4f}"


def missing_notes(keys, category) -> list[str]:
    present = {k.method for k in keys}
    notes = []
    for method in METHODS:
        if method.name not in present and not method.made_by:  # a reference row not run is not a gap
            notes.append(f"no {method.name} (nothing evaluated under {method.name}/{category}): skipped")
    for method in ITERATIVE:
        its = sorted({k.iteration for k in keys if k.method == method})
        if len(its) == 1:
            notes.append(f"{method} has one iteration only")
    return notes


def markdown_table(rows: dict, ks, n_roots: int, label=row_label, metrics=TABLE_METRICS) -> str:
    header = ["Method"] + [f"{m}@{k} {'↑' if up else '↓'}" for k in ks for m, up in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for key, vals in rows.items():
        cells = [label(key)] + [format_cell(vals[(m, k)], n_roots) for k in ks for m, _ in metrics]
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


def _seconds(value) -> str | None:
    return None if value is None else f"{value:.0f}"


def training_budget(run_root, category) -> str | None:
    """Markdown table of what each trained stage cost, from its run config: optimizer steps, SFT records, DPO pairs
    and rejected items per pair (a pair of k rejected items runs k+1 sequences), the warm-up steps it took (after
    the 10% cap; – in runs made before they were recorded), its training seconds, its whole process's seconds
    (start-up included) and those of its greedy evaluation; None when no stage has a config."""
    lines = []
    for key, d in model_dirs(run_root, category).items():
        for stage in ("sft", "dpo"):
            path = d / f"run_config_{stage}.json"
            if not path.is_file():
                continue
            config = read_json(path)
            args = config.get("args") if isinstance(config, dict) else None
            if not isinstance(args, dict):
                raise UserError(f"{path}: no 'args' object: not a run config")
            sft = stage == "sft"
            evaluation = d / "run_config_inference.json"
            eval_seconds = read_json(evaluation).get("process_seconds") if evaluation.is_file() else None
            cells = [row_label(key), stage.upper(), args.get("steps"), args.get("train_records") if sft else None,
                     None if sft else args.get("pairs"), None if sft else args.get("negatives_per_pair", 1),
                     args.get("warmup_steps_effective"), _seconds(args.get("train_seconds")),
                     _seconds(config.get("process_seconds")), _seconds(eval_seconds)]
            if sft and "record_weight_mean" in args:
                cells[1] = "SFT, genre re-weighted"
            lines.append("| " + " | ".join("–" if c is None else str(c) for c in cells) + " |")
    if not lines:
        return None
    return "\n".join(["| Model | trained stage | optimizer steps | SFT records | DPO pairs | rejected per pair | "
                      "warm-up steps | training s | stage process s | evaluation process s |",
                      "|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|", *lines])


def iteration_times(run_root, category) -> str | None:
    """Markdown table of each iteration's whole cost, from the run configs under it<i>/: the seconds of every stage
    process it ran (self-play, SFT step, DPO step and their evaluations, start-ups included); None without any."""
    lines = []
    for method in METHODS:
        base = method_dir(run_root, method.name, category)
        if not method.iterative or not base.is_dir():
            continue
        for _, d in iteration_dirs(base):
            seconds = [read_json(c).get("process_seconds") for c in sorted(d.rglob("run_config_*.json"))]
            if seconds and all(x is not None for x in seconds):
                lines.append(f"| {method.name} {d.name} | {len(seconds)} | {sum(seconds):.0f} |")
    if not lines:
        return None
    return "\n".join(["| Iteration | stage processes | seconds |", "|:---|---:|---:|", *lines])


def answers_table(run_root, category) -> str | None:
    """Markdown table of what each model writes for the test users (its greedy answer line, from eval_users.jsonl):
    how many distinct answers, the most common one and its share. A model that gives most users one title is a
    popularity prior whatever its top-K lists look like after grounding. None when no model has per-user lists."""
    lines = []
    for key, d in model_dirs(run_root, category).items():
        path = d / users_name()
        counts = answer_counts(read_eval_users(path, 1)["texts"]) if path.is_file() else None
        if not counts:
            continue
        users = sum(counts.values())
        common, count = counts.most_common(1)[0]
        common = common.replace("|", "\\|").replace("`", "'")
        lines.append(f"| {row_label(key)} | {users} | {len(counts)} | `{common}` | {count / users:.2f} |")
    if not lines:
        return None
    return "\n".join(["| Model | users | distinct answers | most common answer | its share |",
                      "|:---|---:|---:|:---|---:|", *lines])


def build_report(roots, category, ks=(1, 5)) -> tuple[str, dict, list[dict], list[str]]:
    """Markdown text, merged rows, per-root collections and notes for a category over one or more run roots."""
    collected = [collect(r, category) for r in roots]
    for r, c in zip(roots, collected):
        if not c:
            raise UserError(f"no eval_top*.json for {category} under {r} (looked in "
                            f"{', '.join(m.name + '/' + category for m in METHODS)})")
    rows, notes = merge(collected, ks, [m for m, _ in TABLE_METRICS + BEYOND_METRICS])
    notes = missing_notes(rows.keys(), category) + notes
    title = f"## {category}: " + (f"{roots[0]}" if len(roots) == 1 else
                                  f"mean ± sample std over {len(roots)} run roots ({', '.join(map(str, roots))})")
    parts = [title, "", markdown_table(rows, ks, len(roots)), ""]
    note = n_note(collected, ks)
    notes_all = ([note] if note else []) + ["↑ higher is better, ↓ lower is better; – = not available"] + notes
    parts += [f"- {n}" for n in notes_all]
    parts += beyond_section(rows, ks[-1], len(roots))
    budget = training_budget(roots[0], category)
    if budget:
        where = "" if len(roots) == 1 else f" (of {roots[0]}; the recipe is the same in every root)"
        parts += ["", f"### Training budget per stage{where}", "", budget]
    times = iteration_times(roots[0], category)
    if times:
        parts += ["", f"### Time per iteration{where if budget else ''}", "", times]
    answers = answers_table(roots[0], category)
    if answers:
        of = "" if len(roots) == 1 else f" (of {roots[0]})"
        parts += ["", f"### What each model answers{of}", "", answers]
    parts += constrained_section(roots, category, ks, rows)
    parts += candidates_section(roots, category)
    return "\n".join(parts) + "\n", rows, collected, notes


def beyond_section(rows: dict, k: int, n_roots: int) -> list[str]:
    """Markdown lines: the beyond-accuracy table at K for the rows whose eval files hold those metrics (written from
    the per-user files: python -m eval.recompute); nothing when none does."""
    have = {key: vals for key, vals in rows.items()
            if any(not math.isnan(v) for m, _ in BEYOND_METRICS for v in vals[(m, k)])}
    if not have:
        return []
    left = [row_label(key) for key in rows if key not in have]
    lines = ["", f"### Beyond accuracy at K={k}", "", markdown_table(have, [k], n_roots, metrics=BEYOND_METRICS), "",
             "- MRR: mean reciprocal rank of the target within the top-K; Coverage: distinct recommended items / "
             "catalog items; Gini (0 = every item recommended equally often) and Entropy (nats) of how often each item "
             "is recommended; ARP: the recommended items' mean training popularity (train targets); TailShare: share "
             "of the recommendations in the long tail (the items outside those holding 80% of the training "
             "interactions); HR_head/mid/tail: HR of the users whose target is in the head (the items holding the "
             "first 20% of the training interactions), the mid (the next 60%) or the tail; PopREO: their std / mean "
             "(0 = every group hit as often). Definitions: docs/metrics.md."]
    return lines + ([f"- no beyond-accuracy metrics (no per-user file) for: {', '.join(left)}"] if left else [])


def constrained_section(roots, category, ks, greedy_rows: dict) -> list[str]:
    """Markdown lines: for each model with constrained-decoding eval files (in every root), its greedy row then its
    constrained row; nothing when there are none, one note when none is in every root."""
    collected = [collect(r, category, "constrained") for r in roots]
    if not any(collected):
        return []
    rows, notes = merge(collected, ks, [m for m, _ in TABLE_METRICS])
    if not rows:  # constrained files in some roots only: a note, not an empty table
        return ["", "- constrained decoding: no model has constrained eval files in every run root "
                f"({'; '.join(notes)})"]
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


def candidates_section(roots, category) -> list[str]:
    """Markdown lines: HR and NDCG under the candidate protocol (the target among N candidates, ranked by the model's
    log-probability; eval_top{K}_candidates.json) at every K all those files share; nothing when there are none."""
    collected = [collect(r, category, "candidates") for r in roots]
    if not any(collected):
        return []
    ks = sorted(set.intersection(*[set(evals) for c in collected for evals in c.values()]))
    rows, notes = merge(collected, ks, ["HR", "NDCG"])
    if not rows or not ks:
        return ["", "- candidate protocol: no model has candidate eval files in every run root"]
    table = markdown_table(rows, ks, len(roots), metrics=(("HR", True), ("NDCG", True)))
    return ["", f"### {category}: the candidate protocol", "", table, "",
            "- each test user's target among candidates drawn from the items the user never interacted with (the "
            "same for every model: utils/candidates.py), ranked by the model's log-probability of each one's answer "
            "(MostPop: by training popularity); HR@1 is the S-DPO/LLaRA/DMPO papers' HitRatio@1, NDCG at K = the "
            "number of candidates the NDCG over the whole list"] + [f"- candidate protocol: {x}" for x in notes]


# ------------------------------------------------------------------------------------------------ CLI
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
    from eval.figures import exposure_shares, plot_exposure, plot_metrics_per_iteration

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
