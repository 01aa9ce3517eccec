"""What the portable kernels cost: the same short SFT and evaluation with KERNELS=portable and KERNELS=native.

usage: python -m bench.kernels [--records 512] [--test_users 200] [--repeats 3] [--out results/bench/kernels.json]

Runs `bash shell/SFT.sh` (the small model: SFT on --records records for one epoch, then greedy evaluation of
--test_users users) alternately in the two modes (portable, native, portable, ...), each in a fresh output folder,
and reads the training and evaluation seconds from the run configs the stages write. The machine is noisy, so the
modes alternate and the figure to quote is the median of the pairwise ratios. KERNELS=native also takes every core
(CPU_THREADS defaults to the machine's core count there), as a user who prefers speed would run it.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from utils.cli import run_cli
from utils.io import UserError, write_json
from utils.numerics import KERNEL_VARIABLES
from utils.provenance import git_commit, git_dirty, versions

ROOT = Path(__file__).resolve().parents[1]


def one_run(mode: str, records: int, test_users: int, work: Path) -> dict:
    out = work / f"{mode}-{time.monotonic_ns()}"
    env = {**os.environ, "KERNELS": mode, "OUTPUT_ROOT": str(out), "TEST_SAMPLE_SIZE": str(test_users),
           "RECIPE_ARGS": f"sft.sample_size={records} sft.num_train_epochs=1", "CATEGORIES": "ML100K",
           "BASE_MODEL": ""}
    for name in ("CPU_THREADS", "OMP_NUM_THREADS", *KERNEL_VARIABLES):
        env.pop(name, None)  # each mode sets its own
    start = time.perf_counter()
    p = subprocess.run(["bash", "shell/SFT.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise UserError(f"KERNELS={mode} failed:\n{p.stderr[-2000:]}")
    sft = json.loads((out / "SFT/ML100K/run_config_sft.json").read_text())
    inference = json.loads((out / "SFT/ML100K/run_config_inference.json").read_text())
    return {"mode": mode, "wall_seconds": round(wall, 2), "train_seconds": sft["args"]["train_seconds"],
            "inference_process_seconds": inference["process_seconds"], "train_loss": sft["args"]["train_loss"],
            "numerics": sft["settings"]["numerics"]}


def run(records: int = 512, test_users: int = 200, repeats: int = 3, out: str = "results/bench/kernels.json"):
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for _ in range(repeats):
            for mode in ("portable", "native"):
                runs.append(one_run(mode, records, test_users, Path(work)))
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for figure in ("train_seconds", "inference_process_seconds", "wall_seconds"):
        ratios = [a[figure] / b[figure] for a, b in zip(runs[::2], runs[1::2])]
        summary[figure] = {"portable_median": statistics.median(r[figure] for r in runs[::2]),
                           "native_median": statistics.median(r[figure] for r in runs[1::2]),
                           "ratio_portable_over_native_median": round(statistics.median(ratios), 3)}
    result = {"records": records, "test_users": test_users, "repeats": repeats, "git_commit": git_commit(),
              "git_dirty": git_dirty(), "versions": versions(), "runs": runs, "summary": summary}
    write_json(ROOT / out, result)
    print(json.dumps(summary, indent=1) + f"\nwrote {out}")


if __name__ == "__main__":
    run_cli(run)
