"""Benchmark: peak memory of an SFT stage and a DPO stage on the same model (target: DPO <= 1.3x SFT).
Both stages process the same number of sequences per step (DPO: half as many pairs), so the difference is what
DPO adds: the reference model and its forward pass.

usage: python bench/memory.py [--hidden 512] [--layers 8] [--steps 8] [--work /tmp/sprec_memory]
Builds a small Llama of the given size (the embedded model's recipe, full training), then runs train/sft.py and
train/dpo.py (random-negative pairs) in separate processes and reads the peak each records in its run config
(GPU: max allocated; CPU: resident high-water mark, from which a load-only process's peak is subtracted so that
library overhead does not hide the training memory). The DPO reference is held once (trl's reference copy for a
full model, a frozen "ref" adapter for LoRA), not as a second trained model.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD_ONLY = """
import sys; sys.path.insert(0, {root!r})
import trl, peft, datasets  # the same imports as the training stages
from utils.modeling import load_model
from utils.training import peak_memory_mb
m = load_model({model!r}, trainable=True)
print(peak_memory_mb())
"""


def python(*args):
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{args[0]} failed:\n{p.stderr[-3000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--category", default="ML100K")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--work", default="/tmp/sprec_memory")
    args = ap.parse_args()

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    model = work / "model"
    n = args.steps * args.batch_size
    python("utils/tiny_model.py", "--category", args.category, "--out", str(model), "--hidden", str(args.hidden),
           "--layers", str(args.layers), "--heads", str(max(1, args.hidden // 64)))
    base = float(python("-c", LOAD_ONLY.format(root=str(ROOT), model=str(model))).strip())
    python("train/sft.py", "--category", args.category, "--base_model", str(model), "--output_dir",
           str(work / "sft"), "--sample_size", str(n), "--valid_sample_size", "8", "--epochs", "1",
           "--global_batch_size", str(args.batch_size), "--per_device_batch_size", str(args.batch_size),
           "--evals_per_run", "0")
    python("train/self_play.py", "--category", args.category, "--output_dir", str(work / "pairs"),
           "--negatives", "random", "--train_sample_size", str(n), "--valid_sample_size", "8")
    # A DPO step of B pairs runs 2B sequences (chosen and rejected): B/2 pairs match SFT's B sequences per step.
    python("train/dpo.py", "--model_dir", str(model), "--data_dir", str(work / "pairs"), "--output_dir",
           str(work / "dpo"), "--global_batch_size", str(max(1, args.batch_size // 2)),
           "--per_device_batch_size", str(max(1, args.batch_size // 2)), "--evals_per_run", "0")

    peak = {s: json.loads((work / s / f"run_config_{s}.json").read_text())["args"]["peak_memory_mb"]
            for s in ("sft", "dpo")}
    params = json.loads((model / "sprec_tiny.json").read_text())["parameters"]
    gpu = "cuda" in python("-c", "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters, full training; "
          f"SFT {args.batch_size} sequences per step, DPO {max(1, args.batch_size // 2)} pairs (the same number of "
          f"sequences); {'GPU max allocated' if gpu else 'CPU peak RSS'}")
    if not gpu:
        print(f"load-only process: {base:.0f} MB (subtracted below)")
        peak = {s: v - base for s, v in peak.items()}
    print(f"| stage | peak MB |\n|---|---:|\n| SFT | {peak['sft']:.0f} |\n| DPO | {peak['dpo']:.0f} |")
    print(f"DPO / SFT: {peak['dpo'] / peak['sft']:.2f}x")


if __name__ == "__main__":
    main()
