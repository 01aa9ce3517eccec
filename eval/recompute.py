"""Recompute every statistics file the README and docs/ cite from `results/` alone, and say whether each equals its
committed copy: the per-user lists (eval_users.jsonl) are all it reads, no dataset and no model.

usage: python -m eval.recompute [--write False]
Each file below is eval/stats.py's output for the run roots beside it (the commands docs/ gives). With
`--write True` the committed files are rewritten (after a deliberate change to the statistics); by default nothing is
written and the exit status is 1 when a recomputed file differs from the committed one. The generated mean tables of
the README and docs/ are checked by `python -m eval.readme_tables --check`; the learning curve's table by `python -m
eval.learning_curve --run_root results/smollm2-curve`. Statistics files not listed here (results/roster-b138d04,
results/smollm2: older runs, docs/older-runs.md) have no per-user lists and cannot be recomputed.
"""
import contextlib
import io
import os
import tempfile
from pathlib import Path

from utils.cli import run_cli
from utils.io import fail

ROOT = Path(__file__).resolve().parents[1]


def seeds(folder: str, numbers) -> list[str]:
    return [f"{folder}/seed{n}" for n in numbers]


DEMO_SEEDS = ["results/demo", *seeds("results/demo-seeds", (43, 44, 45, 46))]
STATS_FILES = {  # committed statistics file: the run roots it is computed over (the first root: the seed 42 run)
    "results/demo/ML100K_stats.md": ["results/demo"],
    "results/demo-seeds/ML100K_stats.md": DEMO_SEEDS,
    "results/demo-seeds/ML100K_stats_seeds42-44.md": DEMO_SEEDS[:3],
    "results/seeds/ML100K_stats.md": seeds("results/seeds", range(42, 47)),
    "results/roster/ML100K_stats.md": ["results/roster"],
    "results/official-seeds/ML100K_stats.md": seeds("results/official-seeds", range(42, 47)),
    "results/bare-dpo-prompt-seeds/ML100K_stats.md": seeds("results/bare-dpo-prompt-seeds", range(42, 45)),
    "results/grounding/demo-seeds-L3/ML100K_stats.md": seeds("results/grounding/demo-seeds-L3", range(42, 47)),
    "results/smollm2-seeds/ML100K_stats.md": seeds("results/smollm2-seeds", (42, 43)),
}


def recompute(roots: list[str], out: Path) -> None:
    """eval/stats.py over `roots` (relative to the repository) into `out`, quietly."""
    from eval import stats

    here = os.getcwd()
    os.chdir(ROOT)  # the roots are written into the file as given: relative, as the committed files have them
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            stats.run(run_root=",".join(roots), category="ML100K", out=str(out))
    finally:
        os.chdir(here)


def run(write: bool = False) -> None:
    differ = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (path, roots) in enumerate(STATS_FILES.items()):
            out = Path(tmp) / f"{i}.md"
            recompute(roots, out)
            committed = ROOT / path
            same = committed.is_file() and committed.read_bytes() == out.read_bytes()
            if write and not same:
                committed.write_bytes(out.read_bytes())
            print(f"{'same' if same else 'rewritten' if write else 'DIFFERS'}  {path}  ({len(roots)} run root(s))")
            differ += [] if same or write else [path]
    if differ:
        fail(f"{len(differ)} statistics file(s) differ from their recomputation: {', '.join(differ)}", code=1)


if __name__ == "__main__":
    run_cli(run)
