"""Benchmark: peak memory and time per optimizer step of each method's training step on the same model.

usage: python -m bench.memory [--hidden 512] [--layers 8] [--steps 8] [--batch_size 8] [--methods SFT,DPO,S-DPO]
       [--num_negatives 3] [--work /tmp/sprec_memory]
       python -m bench.memory --base_model smollm2 --methods SFT,DPO,DPO-precomputed --steps 4   # pretrained + LoRA
Builds a small Llama of the given size (the embedded model's recipe, full training), or with --base_model takes a
pretrained model (LoRA, loss on the completion; the DPO-family steps start from the SFT run's adapter, as in SPRec,
so SFT runs first), then runs each method's
training stage in its own process on the same records and reads the peak and the training time it records in its
run config (GPU: max allocated; CPU: resident high-water mark, from which a load-only process's peak is subtracted so
that library overhead does not hide the training memory). Time per step is trl's train runtime / optimizer steps
(no evaluation runs). What each step processes:
  SFT, GenreSFT      B records: B sequences (GenreSFT: the same, each record's loss weighted)
  DPO                B/2 pairs: B policy + B reference sequences (also SPRec's, DPO+SFT's and SemanticDPO's DPO step)
  DPO-precomputed    the same, the reference's log-probabilities computed in one pass before training (trl runs
                     that pass while it sets up: its time, the set-up beyond plain DPO's, is added to the steps')
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
METHODS = ("SFT", "GenreSFT", "DPO", "DPO-precomputed", "S-DPO", "DMPO")

LOAD_ONLY = """
import trl, peft, datasets  # the same imports as the training stages
from utils.modeling import load_model
from utils.device import peak_memory_mb
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
    ap.add_argument("--base_model", default="", help="a pretrained model (path, or smollm2): LoRA instead of the "
                                                      "small Llama of --hidden/--layers")
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
    if args.base_model and methods[0] != "SFT":
        sys.exit("--base_model: the DPO-family steps start from the SFT run's adapter; list SFT first in --methods")

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    pairs_per_step = max(1, args.batch_size // 2)
    n_sft, n_pairs = args.steps * args.batch_size, args.steps * pairs_per_step
    if args.base_model:
        from utils.modeling import resolve_base_model

        model = Path(resolve_base_model(args.base_model, args.category))
        if not (model / "config.json").is_file():
            sys.exit(f"--base_model {args.base_model}: no model at {model} (a local directory, or smollm2)")
        what = f"{model.name} (pretrained), LoRA, loss on the completion"
    else:
        model = work / "model"
        python("-m", "utils.tiny_model", "--category", args.category, "--out", str(model), "--hidden", str(args.hidden),
               "--layers", str(args.layers), "--heads", str(max(1, args.hidden // 64)))
        from utils.tiny_model import TINY_MARKER

        params = json.loads((model / TINY_MARKER).read_text())["parameters"]
        what = f"Llama hidden {args.hidden}, {args.layers} layers, {params / 1e6:.1f}M parameters, full training"
    base = float(python("-c", LOAD_ONLY.format(model=str(model))).strip())
    for k in sorted({1, args.num_negatives}):  # random-negative pairs with 1 and with k rejected items
        python("-m", "train.self_play", "--category", args.category, "--output_dir", str(work / f"pairs{k}"),
               "--negatives", "random", "--num_negatives", str(k),
               "--recipe_args", f"self_play.train_sample_size={n_pairs} self_play.valid_sample_size=8")
    # the model's own recipe (recipes/), with this benchmark's sizes
    sft = ["-m", "train.sft", "--category", args.category, "--base_model", str(model), "--recipe_args",
           f"sft.sample_size={n_sft} sft.valid_sample_size=8 sft.num_train_epochs=1 "
           f"sft.global_batch_size={args.batch_size} sft.per_device_train_batch_size={args.batch_size} "
           "sft.evals_per_run=0"]
    dpo_start = work / "SFT" if args.base_model else model  # LoRA DPO continues an adapter

    def dpo(k, loss, extra=""):
        return ["-m", "train.dpo", "--model_dir", str(dpo_start), "--data_dir", str(work / f"pairs{k}"),
                "--recipe_args", f"dpo.loss_type={loss} dpo.global_batch_size={pairs_per_step} "
                f"dpo.per_device_train_batch_size={pairs_per_step} dpo.evals_per_run=0 {extra}"]

    k = args.num_negatives
    runs = {"SFT": (sft, "sft", args.batch_size), "GenreSFT": (sft + ["--genre_weighting", "True"], "sft",
                                                               args.batch_size),
            "DPO": (dpo(1, "sigmoid"), "dpo", 2 * pairs_per_step),
            "DPO-precomputed": (dpo(1, "sigmoid", "dpo.precompute_ref_log_probs=true"), "dpo", 2 * pairs_per_step),
            "S-DPO": (dpo(k, "sdpo"), "dpo", (k + 1) * pairs_per_step),
            "DMPO": (dpo(k, "dmpo"), "dpo", (k + 1) * pairs_per_step)}
    results, setup = {}, {}
    for method in methods:
        command, stage, sequences = runs[method]
        out = work / method
        python(*command, "--output_dir", str(out))
        cfg = json.loads((out / f"run_config_{stage}.json").read_text())["args"]
        setup[method] = cfg.get("setup_seconds", 0.0)
        results[method] = [sequences, cfg["peak_memory_mb"], cfg["train_seconds"], cfg["steps"]]
    if "DPO-precomputed" in results:  # its reference pass ran in trl's set-up: count it, beyond plain DPO's set-up
        results["DPO-precomputed"][2] += setup["DPO-precomputed"] - setup.get("DPO", 0.0)

    gpu = "cuda" in python("-c", "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
    print(f"model: {what}; {args.steps} steps; SFT {args.batch_size} records per step, DPO-family {pairs_per_step} "
          f"pairs per step (S-DPO/DMPO with {k} rejected items each); {'GPU max allocated' if gpu else 'CPU peak RSS'}")
    if not gpu:
        print(f"load-only process: {base:.0f} MB (subtracted below)")
    if "DPO-precomputed" in results and "DPO" not in results:
        print("(DPO-precomputed without DPO: its set-up, tokenization included, is all counted as the reference pass)")
    first = methods[0]
    per_step = {m: v[2] / v[3] for m, v in results.items()}
    print(f"| method | policy sequences per step | peak MB | s per step | s per record or pair | memory vs {first} | "
          f"time per step vs {first} |\n|---|---:|---:|---:|---:|---:|---:|")
    peak = {m: v[1] - (0 if gpu else base) for m, v in results.items()}
    for m, (sequences, *_rest) in results.items():
        examples = args.batch_size if m in ("SFT", "GenreSFT") else pairs_per_step
        print(f"| {m} | {sequences} | {peak[m]:.0f} | {per_step[m]:.2f} | {per_step[m] / examples:.2f} | "
              f"{peak[m] / peak[first]:.2f}x | {per_step[m] / per_step[first]:.2f}x |")
    if "SFT" in results:
        for m in ("DPO", "DPO-precomputed"):
            if m in results:
                print(f"{m}: one pair costs {per_step[m] / pairs_per_step / (per_step['SFT'] / args.batch_size):.2f}x "
                      "one SFT record (goal <= 2.5x)")


if __name__ == "__main__":
    main()
