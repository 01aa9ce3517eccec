"""Recompute every statistics file the README and docs/ cite, and every eval file's metrics, from `results/` alone, and
say whether each equals its committed copy: the per-user lists (eval_users*.jsonl) and the training popularity beside
them (eval_context.json) are all it reads, no dataset and no model.

usage: python -m eval.recompute [--write False] [--add_contexts False]
Each statistics file below is eval/stats.py's output for the run roots beside it (the commands docs/ gives), each
slices file eval/slices.py's (its Markdown and its JSON).
Each eval file (eval_top{K}[_<decoding>].json) beside a per-user file gets every metric but MGU and DGU (they need the
test histories) from utils.metrics.recomputed_metrics, the evaluation's own functions, and must hold the same values.
With `--write True` the committed files are rewritten (after a deliberate change to the statistics or a new metric);
by default nothing is written and the exit status is 1 when a recomputed file differs from the committed one. A model
directory evaluated before eval_context.json was written gets one with `--add_contexts True --write True`, from the
train split of its category's dataset (data/<Category>), checked first against the popularity deciles its per-user
file recorded. The generated mean tables of the README and docs/ are checked by `python -m eval.readme_tables
--check`; the learning curve's table by `python -m
eval.learning_curve --run_root results/smollm2-curve`. Statistics files not listed here (results/roster-b138d04,
results/smollm2: older runs, docs/older-runs.md) have no per-user lists and cannot be recomputed.
"""
import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import NamedTuple

from utils.cli import run_cli
from utils.io import fail
from utils.metrics import stats_name

ROOT = Path(__file__).resolve().parents[1]


def seeds(folder: str, numbers) -> list[str]:
    return [f"{folder}/seed{n}" for n in numbers]


DEMO_SEEDS = seeds("results/demo-seeds", range(42, 47))  # the seed rule before (results/README.md)
class Options(NamedTuple):
    """A statistics file's eval.stats options other than its run roots."""
    category: str = "ML100K"
    decoding: str = "greedy"
    k: int = 5
    references: str = ""


STATS_OPTIONS = {  # the files made with other options than Options()'s: the recommender's five-seed claim
    # (docs/recommender.md), both protocols at K 1 and 5, every model also against MostPop
    f"results/recommender-seeds/{stats_name('ML100KALL', d, k)}": Options("ML100KALL", d, k, "MostPop")
    for d in ("greedy", "constrained") for k in (1, 5)}
STATS_FILES = {  # committed statistics file: the run roots it is computed over (the first root: the seed 42 run)
    "results/demo/ML100K_stats.md": ["results/demo"],
    "results/demo-seeds/seed42/ML100K_stats.md": ["results/demo-seeds/seed42"],
    "results/demo-seeds/ML100K_stats.md": DEMO_SEEDS,
    "results/demo-seeds/ML100K_stats_seeds42-44.md": DEMO_SEEDS[:3],
    "results/seeds/ML100K_stats.md": seeds("results/seeds", range(42, 47)),
    "results/roster/ML100K_stats.md": ["results/roster"],
    "results/official-seeds/ML100K_stats.md": seeds("results/official-seeds", range(42, 47)),
    "results/bare-dpo-prompt-seeds/ML100K_stats.md": seeds("results/bare-dpo-prompt-seeds", range(42, 45)),
    "results/grounding/demo-seeds-L3/ML100K_stats.md": seeds("results/grounding/demo-seeds-L3", range(42, 47)),
    "results/smollm2-seeds/ML100K_stats.md": seeds("results/smollm2-seeds", (42, 43)),
} | {path: seeds("results/recommender-seeds", range(42, 47)) for path in STATS_OPTIONS}


SLICES_FILES = {  # committed slices report (its JSON beside it): the run roots (python -m eval.slices)
    "results/seeds/ML100K_slices.md": seeds("results/seeds", range(42, 47)),
}


def recompute(roots: list[str], out: Path, options: Options) -> None:
    """eval/stats.py over `roots` (relative to the repository) into `out`, quietly."""
    from eval import stats

    here = os.getcwd()
    os.chdir(ROOT)  # the roots are written into the file as given: relative, as the committed files have them
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stats.main(stats.Args(run_root=",".join(roots), out=str(out), **options._asdict()))
    finally:
        os.chdir(here)


def recompute_slices(roots: list[str], out: Path) -> None:
    """eval/slices.py over `roots` into the folder `out` (no figure), quietly."""
    from eval import slices

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            slices.run(run_root=",".join(roots), category="ML100K", out=str(out), figs_dir="")
    finally:
        os.chdir(here)


def eval_dirs() -> list[Path]:
    """Every directory under results/ with a per-user file, in path order."""
    return sorted({p.parent for p in (ROOT / "results").rglob("eval_users*.jsonl")})


def _decodings(model_dir: Path) -> list:
    from utils.metrics import DECODINGS, users_name

    found = [d for d in DECODINGS if (model_dir / users_name(d)).is_file()]
    return found or [None]


def context_from_data(model_dir: Path):
    """The eval context of a model directory evaluated before contexts were written: its category's train split,
    refused unless it gives the very popularity deciles the per-user files recorded."""
    import numpy as np

    from utils.data import category_dir, load_catalog, load_split
    from utils.io import UserError, read_json, read_jsonl
    from utils.metrics import DECODINGS, TrainContext, item_deciles, users_name

    category = next(read_json(p).get("category") for p in sorted(model_dir.glob("eval_top*.json")))
    data = category_dir(category)
    context = TrainContext.of(load_split(data, "train"), load_catalog(data))
    deciles = item_deciles(context.popularity)
    for d in DECODINGS:
        path = model_dir / users_name(d)
        for line, r in read_jsonl(path) if path.is_file() else []:
            if deciles[r["target"]] != r["target_decile"] or not np.array_equal(deciles[r["topk"]], r["deciles"]):
                raise UserError(f"{path}, line {line}: its popularity deciles are not those of {data}'s train split: "
                                f"evaluated on another dataset; no context written")
    return context, category


def recompute_eval_files(write: bool, add_contexts: bool) -> list[str]:
    """Check (or with `write`, rewrite) every eval file beside a per-user file; the paths that differ."""
    from utils.io import UserError, read_json, write_json
    from utils.metrics import CONTEXT_NAME, METRIC_KEYS, TrainContext, read_eval_users, recomputed_metrics, users_name

    differ, missing = [], []
    for d in eval_dirs():
        rel = d.relative_to(ROOT)
        if (d / CONTEXT_NAME).is_file():
            context = TrainContext.read(d / CONTEXT_NAME)
        elif add_contexts and write:
            context, category = context_from_data(d)
            write_json(d / CONTEXT_NAME, context.to_json(category), indent=None)
            print(f"added    {rel / CONTEXT_NAME}")
        else:
            missing.append(str(rel))
            continue
        for decoding in _decodings(d):
            suffix = users_name(decoding)[len("eval_users"):-len(".jsonl")]
            for path in sorted(d.glob(f"eval_top*{suffix}.json")):
                ev = read_json(path)
                if path.name != f"eval_top{ev.get('topk')}{suffix}.json":
                    continue  # eval_top5.json's glob also meets eval_top5_constrained.json
                k = ev["topk"]
                again = recomputed_metrics(read_eval_users(d / users_name(decoding), k), k, context)
                if all(key in ev and ev[key] == v for key, v in again.items()):
                    continue
                if write:
                    head = ("model", "category", "topk", "n", "n_skipped")
                    row = {key: ev.get(key) for key in head} | {key: again.get(key, ev.get(key)) for key in METRIC_KEYS}
                    write_json(path, row | {key: v for key, v in ev.items() if key not in row})
                print(f"{'rewritten' if write else 'DIFFERS'}  {path.relative_to(ROOT)}")
                differ += [] if write else [str(path.relative_to(ROOT))]
    if missing:
        raise UserError(f"{len(missing)} model directories have per-user files but no {CONTEXT_NAME} (e.g. "
                        f"{missing[0]}): run python -m eval.recompute --add_contexts True --write True once")
    return differ


def run(write: bool = False, add_contexts: bool = False) -> None:
    differ = recompute_eval_files(write, add_contexts)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, roots) in enumerate(STATS_FILES.items()):
            out = Path(tmp) / f"{i}.md"
            recompute(roots, out, STATS_OPTIONS.get(path, Options()))
            committed = ROOT / path
            same = committed.is_file() and committed.read_bytes() == out.read_bytes()
            if write and not same:
                committed.write_bytes(out.read_bytes())
            print(f"{'same' if same else 'rewritten' if write else 'DIFFERS'}  {path}  ({len(roots)} run root(s))")
            differ += [] if same or write else [path]
        for i, (path, roots) in enumerate(SLICES_FILES.items()):
            out = Path(tmp) / f"slices{i}"
            recompute_slices(roots, out)
            for name in (Path(path).name, Path(path).with_suffix(".json").name):
                committed, again = ROOT / Path(path).parent / name, out / name
                same = committed.is_file() and committed.read_bytes() == again.read_bytes()
                if write and not same:
                    committed.write_bytes(again.read_bytes())
                rel = (Path(path).parent / name).as_posix()
                print(f"{'same' if same else 'rewritten' if write else 'DIFFERS'}  {rel}  ({len(roots)} run root(s))")
                differ += [] if same or write else [rel]
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        fail(f"{len(differ)} file(s) differ from their recomputation: {shown}", code=1)


if __name__ == "__main__":
    run_cli(run)
