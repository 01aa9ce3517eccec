"""Benchmark: what a pretrained base (SmolLM2-135M-Instruct, LoRA) costs to train and to run on this CPU, today's path
against each cheaper one, on the same records, pairs and prompts.

usage: python -m bench.pretrained_cpu [--steps 3] [--batch_size 8] [--prompts 64] [--adapter runs/.../SFT-512/ML100K]
       [--out results/bench/pretrained_cpu.json]
Each variant runs in a fresh process (kernels are chosen when torch loads), one after the other, on the same data:
  portable            today's default: KERNELS=portable (2 threads, AVX2 kernels), fp32, trl's head on every position
  native              KERNELS=native (the machine's fastest kernels), fp32, the same head
  native+compact      and trl's head on the labelled positions only (utils.trl_config.score_labelled_positions_only)
  bf16+compact        KERNELS=bf16: bf16 autocast and a bf16 frozen base, fp32 LoRA weights, the compact head
SFT: seconds per record, over `--steps` optimizer steps of `--batch_size` records after one untimed step; DPO: seconds
per pair, the same with `--batch_size`/2 pairs per step (trl's frozen reference adapter included); generation:
seconds per prompt of the shared greedy routine (utils/generation.py) on `--prompts` test prompts, and which answers
equal the portable fp32 ones. `--adapter` generates with a trained adapter (merged, as evaluation does); without it,
the base model's answers are compared. Ratios are against the first variant, measured in the same run.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"portable": ("portable", False), "native": ("native", False), "native+compact": ("native", True),
            "bf16+compact": ("bf16", True)}
PORTABLE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}  # shell/common.sh


def records(n: int, split: str, seed: int = 0):
    from utils.data import category_dir, load_split, sample_records

    return sample_records(load_split(category_dir("ML100K"), split), n, seed)


def time_training(trainer, units: int, steps: int) -> float:
    """Seconds per unit (record or pair) over the trainer's optimizer steps after the first, untimed one (kernel
    set-up)."""
    times = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            times.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.train()
    return (times[-1] - times[1]) / steps / units


def measure(base: str, compact: bool, steps: int, batch: int, prompts: int, adapter: str) -> dict:
    """One variant, in this process (its kernels were set by its environment)."""
    import random

    import torch
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from utils.data import category_dir, load_catalog
    from utils.generation import Batching, generate
    from utils.modeling import load_model, load_tokenizer
    from utils.prompt import PROJECT, record_target
    from utils.recipe import resolve
    from utils.trl_config import (
        device_args,
        lora_config,
        preference_dataset,
        score_labelled_positions_only,
        sft_dataset,
    )

    torch.manual_seed(0)
    if compact:
        score_labelled_positions_only()
    lora = resolve(ROOT / "recipes" / "pretrained-cpu.yaml", "", ("lora",))["lora"]
    common = dict(output_dir="/tmp/bench_pretrained_cpu", report_to="none", save_strategy="no", learning_rate=1e-4,
                  logging_strategy="no", disable_tqdm=True, max_steps=steps + 1, **device_args())
    tok = load_tokenizer(base)
    out = {"threads": torch.get_num_threads()}

    train = records(batch * (steps + 1), "train")
    trainer = SFTTrainer(model=load_model(base, trainable=True, full=False),
                         args=SFTConfig(per_device_train_batch_size=batch, completion_only_loss=True, **common),
                         train_dataset=sft_dataset(train, tokenizer=tok), processing_class=tok,
                         peft_config=lora_config(lora))
    out["sft_s_per_record"] = time_training(trainer, batch, steps)

    pairs_per_step = max(1, batch // 2)
    rng = random.Random(0)
    titles = [record_target(r) for r in records(2000, "train", 1)]
    drawn = records(pairs_per_step * (steps + 1), "train", 2)
    pairs = [{"prompt": PROJECT.dpo_prompt(r), "chosen": PROJECT.chosen(r),
              "rejected": PROJECT.rejected(rng.choice(titles))} for r in drawn]
    model = load_model(base, trainable=True, full=False)
    from peft import get_peft_model

    trainer = DPOTrainer(model=get_peft_model(model, lora_config(lora)), ref_model=None,
                         args=DPOConfig(per_device_train_batch_size=pairs_per_step, beta=0.1, **common),
                         train_dataset=preference_dataset(pairs), processing_class=tok)
    out["dpo_s_per_pair"] = time_training(trainer, pairs_per_step, steps)

    model = load_model(adapter or base, merge=True)
    tok = load_tokenizer(adapter or base, padding_side="left")
    test = records(prompts, "test")
    texts = [PROJECT.generation_prompt(r) for r in test]
    # the answer length evaluation allows (eval/inference.py): the catalog's longest title, not the test targets'
    max_new = PROJECT.max_new_tokens(tok, load_catalog(category_dir("ML100K")).names, "evaluation")
    generate(model, tok, texts[:8], max_new_tokens=max_new, batching=Batching(progress=False))
    start = time.perf_counter()
    answers = generate(model, tok, texts, max_new_tokens=max_new, batching=Batching(progress=False))
    out["generate_s_per_prompt"] = (time.perf_counter() - start) / len(texts)
    out["answers"] = [a[0] for a in answers]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--adapter", default="", help="a trained LoRA adapter of the base to generate with")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: measure one variant, print JSON
    args = ap.parse_args()
    from utils.pretrained import pretrained_dir

    base = str(pretrained_dir("smollm2"))
    if args.one:
        kernels, compact = VARIANTS[args.one]
        print("RESULT " + json.dumps(measure(base, compact, args.steps, args.batch_size, args.prompts, args.adapter)))
        return
    if not (Path(base) / "config.json").is_file():
        sys.exit("SmolLM2 is not built: python -m utils.pretrained --name smollm2")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS):
        sys.exit(f"--variants: a comma-separated subset of {','.join(VARIANTS)}")
    results = {}
    for name in variants:
        kernels = VARIANTS[name][0]
        env = {k: v for k, v in os.environ.items() if k not in PORTABLE}
        env.update(KERNELS=kernels, OMP_NUM_THREADS="2", CUDA_VISIBLE_DEVICES="",
                   **(PORTABLE if kernels == "portable" else {}))
        p = subprocess.run([sys.executable, "-m", "bench.pretrained_cpu", "--one", name, "--steps", str(args.steps),
                            "--batch_size", str(args.batch_size), "--prompts", str(args.prompts), "--adapter",
                            args.adapter], cwd=ROOT, env=env, capture_output=True, text=True)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not line:
            sys.exit(f"variant {name} failed:\n{p.stderr[-3000:]}")
        results[name] = json.loads(line[0][len("RESULT "):])
        print(f"[bench] {name}: {json.dumps({k: v for k, v in results[name].items() if k != 'answers'})}",
              flush=True)
    first = variants[0]
    ref = results[first]["answers"]
    generated_by = "adapter " + Path(args.adapter).as_posix() if args.adapter else "the base"
    print(f"\nSmolLM2-135M-Instruct, LoRA (recipes/pretrained-cpu.yaml's lora), 2 threads; SFT {args.batch_size} "
          f"records and DPO {max(1, args.batch_size // 2)} pairs per step, {args.steps} timed steps each; greedy "
          f"generation of {args.prompts} test prompts ({generated_by})"
          f"\n\n| variant | SFT s/record | DPO s/pair | generation s/prompt | SFT vs {first} | DPO vs {first} | "
          f"generation vs {first} | answers equal to {first} |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        same = sum(a == b for a, b in zip(r["answers"], ref))
        print(f"| {name} | {r['sft_s_per_record']:.2f} | {r['dpo_s_per_pair']:.2f} | "
              f"{r['generate_s_per_prompt']:.3f} | "
              f"{results[first]['sft_s_per_record'] / r['sft_s_per_record']:.2f}x faster | "
              f"{results[first]['dpo_s_per_pair'] / r['dpo_s_per_pair']:.2f}x faster | "
              f"{results[first]['generate_s_per_prompt'] / r['generate_s_per_prompt']:.2f}x faster | "
              f"{same}/{len(ref)} |")
    if args.out:
        from utils.io import write_json
        from utils.numerics import cpu_facts
        from utils.provenance import git_commit, git_dirty, versions

        write_json(args.out, {"args": {k: v for k, v in vars(args).items() if k not in ("one", "out")},
                              "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": versions(),
                              "cpu": cpu_facts(), "results": results})


if __name__ == "__main__":
    main()
