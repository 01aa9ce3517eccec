"""Benchmark: peak memory and time per optimizer step of each method's training step on the same model.

usage: python bench/memory.py [--hidden 512] [--layers 8] [--steps 8] [--batch_size 8] [--methods SFT,DPO,S-DPO]
       [--num_negatives 3] [--work /tmp/sprec_memory]
Builds a small Llama of the given size (the embedded model's recipe, full training), then runs each method's
training stage in its own process on the same records and reads the peak and the training time it records in its
run config (GPU: max allocated; CPU: resident high-water mark, from which a load-only process's peak is subtracted so
that library overhead does not hide the training memory). Time per step is trl's train runtime / optimizer steps
(no evaluation runs). What each step processes:
  SFT, GenreSFT      B records: B sequences (GenreSFT: the same, each record's loss weighted)
  DPO                B/2 pairs: B policy + B reference sequences (also SPRec's, DPO+SFT's and SemanticDPO's DPO step)
  S-DPO, DMPO        B/2 pairs of k rejected items: (k+1)·B/2 policy + as many reference sequences
so SFT and DPO see the same number of sequences per step (the DPO reference is held once: trl's reference copy for
a full model, a frozen "ref" adapter for LoRA), and S-DPO/DMPO (k+1)/2 times as many.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("SFT", "GenreSFT", "DPO", "S-DPO", "DMPO")

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
    ap.add_argument("--batch_size", type=int, default=8, help="SFT records per step; DPO pairs are half as many")
    ap.add_argument("--num_negatives", type=int, default=3, help="rejected items per S-DPO/DMPO pair")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--work", default="/tmp/sprec_memory")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        sys.exit(f"--methods: a comma-separated subset of {','.join(METHODS)}")

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    model = work / "model"
    pairs_per_step = max(1, args.batch_size // 2)
    n_sft, n_pairs = args.steps * args.batch_size, args.steps * pairs_per_step
    python("utils/tiny_model.py", "--category", args.category, "--out", str(model), "--hidden", str(args.hidden),
           "--layers", str(args.layers), "--heads", str(max(1, args.hidden // 64)))
    base = float(python("-c", LOAD_ONLY.format(root=str(ROOT), model=str(model))).strip())
    for k in sorted({1, args.num_negatives}):  # random-negative pairs with 1 and with k rejected items
        python("train/self_play.py", "--category", args.category, "--output_dir", str(work / f"pairs{k}"),
               "--negatives", "random", "--num_negatives", str(k), "--train_sample_size", str(n_pairs),
               "--valid_sample_size", "8")
    sft = ["train/sft.py", "--category", args.category, "--base_model", str(model), "--sample_size", str(n_sft),
           "--valid_sample_size", "8", "--epochs", "1", "--global_batch_size", str(args.batch_size),
           "--per_device_batch_size", str(args.batch_size), "--evals_per_run", "0"]

    def dpo(k, loss):
        return ["train/dpo.py", "--model_dir", str(model), "--data_dir", str(work / f"pairs{k}"), "--loss_type", loss,
                "--global_batch_size", str(pairs_per_step), "--per_device_batch_size", str(pairs_per_step),
                "--evals_per_run", "0"]

    k = args.num_negatives
    runs = {"SFT": (sft, "sft", args.batch_size), "GenreSFT": (sft + ["--genre_weighting", "True"], "sft",
                                                               args.batch_size),
            "DPO": (dpo(1, "sigmoid"), "dpo", 2 * pairs_per_step),
            "S-DPO": (dpo(k, "sdpo"), "dpo", (k + 1) * pairs_per_step),
            "DMPO": (dpo(k, "dmpo"), "dpo", (k + 1) * pairs_per_step)}
    results = {}
    for method in methods:
        command, stage, sequences = runs[method]
        out = work / method
        python(*command, "--output_dir", str(out))
        cfg = json.loads((out / f"run_config_{stage}.json").read_text())["args"]
        results[method] = (sequences, cfg["peak_memory_mb"], cfg["train_seconds"] / cfg["steps"])

    params = json.loads((model / "sprec_tiny.json").read_text())["parameters"]
    gpu = "cuda" in python("-c", "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    print(f"model: Llama hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters, full training; "
          f"{args.steps} steps; SFT {args.batch_size} records per step, DPO-family {pairs_per_step} pairs per step "
          f"(S-DPO/DMPO with {k} rejected items each); {'GPU max allocated' if gpu else 'CPU peak RSS'}")
    if not gpu:
        print(f"load-only process: {base:.0f} MB (subtracted below)")
    first = methods[0]
    print(f"| method | policy sequences per step | peak MB | s per step | memory vs {first} | time vs {first} |\n"
          "|---|---:|---:|---:|---:|---:|")
    peak = {m: v[1] - (0 if gpu else base) for m, v in results.items()}
    for m, (sequences, _, seconds) in results.items():
        print(f"| {m} | {sequences} | {peak[m]:.0f} | {seconds:.2f} | {peak[m] / peak[first]:.2f}x | "
              f"{seconds / results[first][2]:.2f}x |")


if __name__ == "__main__":
    main()
