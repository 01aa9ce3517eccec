"""Benchmark: the shared generation routine against the official SPRec sampling settings, same model and prompts.

usage: python bench/sampling.py [--model models/SFT/ML100K] [--n_prompts 1024] [--category ML100K]
       python bench/sampling.py --shape llama-1b --n_prompts 2804        # random Llama-3.2-1B-shaped model (GPU)
Official settings: batches of 64 in prompt order, 128 new tokens for every row (HF generate; fp16 on GPU).
Ours: utils.generation.generate (length-sorted token-budget batches, stop at newline/EOS, finished rows dropped,
new-token limit from the catalog's longest title; bf16 on GPU). Each is warmed up on a batch of the same shape
before it is timed. Prints both times, the ratio, and how often the parsed titles agree.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from utils.data import category_dir, load_catalog, load_split, sample_records  # noqa: E402
from utils.prompt import parse_title, render_prompt  # noqa: E402


def official_generate(model, tokenizer, prompts, batch_size=64, max_new_tokens=128):
    """The official data_generate.py loop: fixed batches in prompt order, greedy, 128 new tokens. Its models never
    learned EOS (their SFT appended none), so every row ran to the limit: `min_new_tokens` reproduces that here,
    whatever this model learned."""
    import torch

    texts = []
    tokenizer.padding_side = "left"
    for s in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[s:s + batch_size], return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                 do_sample=False, num_beams=1,
                                 pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
        texts += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return texts


def timed(fn):
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    import torch

    from utils.generation import generate, max_answer_tokens
    from utils.modeling import load_model, load_tokenizer, tiny_model_dir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model directory (default: models/SFT/<C>, else the tiny model)")
    ap.add_argument("--shape", default="", choices=["", "llama-1b", "small"])
    ap.add_argument("--category", default="ML100K")
    ap.add_argument("--n_prompts", type=int, default=1024)
    ap.add_argument("--token_budget", type=int, default=0, help="ours: tokens per batch (default: 32k CPU, 256k GPU)")
    ap.add_argument("--tokenizer", default="", help="with --shape: the random model's tokenizer (default: the model's)")
    ap.add_argument("--skip_official", action="store_true")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    data = category_dir(args.category)
    catalog = load_catalog(data)
    records = sample_records(load_split(data, "train"), args.n_prompts, 0)
    prompts = [render_prompt(r) for r in records]
    model_dir = args.model or next((str(d) for d in (Path("models/SFT") / args.category, tiny_model_dir(args.category))
                                    if (d / "DONE").is_file()), None)
    if model_dir is None:
        sys.exit("no model: pass --model, or build one (bash shell/demo.sh)")
    tokenizer = load_tokenizer(args.tokenizer if args.shape and args.tokenizer else model_dir, padding_side="left")
    device = "cuda" if cuda else "cpu"
    if args.shape:
        from random_model import random_llama

        model_ours = random_llama(args.shape, tokenizer).to(device).eval()
        if not cuda:
            model_ours = model_ours.float()
        model_official = model_ours.to(torch.float16) if cuda else model_ours
        name = f"random {args.shape} Llama"
    else:
        model_ours = load_model(model_dir, merge=True, device=device)
        model_official = model_ours
        name = model_dir
    budget = args.token_budget or (262144 if cuda else 32768)
    max_new = max_answer_tokens(tokenizer, catalog.names)
    print(f"model: {name}; {len(prompts)} prompts; device: {torch.cuda.get_device_name() if cuda else 'CPU'}; "
          f"ours: token budget {budget}, max new tokens {max_new}")

    rows = []
    if not args.skip_official:
        official_generate(model_official, tokenizer, prompts[:64])  # warm-up, same batch shape
        official, t_official = timed(lambda: official_generate(model_official, tokenizer, prompts))
        rows.append(("official (batch 64, 128 new tokens)", t_official))
    if cuda and args.shape:
        model_ours = model_ours.to(torch.bfloat16)
    generate(model_ours, tokenizer, prompts[:256], max_new_tokens=max_new, token_budget=budget, progress=False)
    ours, t_ours = timed(lambda: generate(model_ours, tokenizer, prompts, max_new_tokens=max_new,
                                          token_budget=budget, progress=False))
    rows.append(("ours (shared routine)", t_ours))
    print("\n| method | seconds | prompts/s |\n|---|---:|---:|")
    for label, t in rows:
        print(f"| {label} | {t:.2f} | {len(prompts) / t:.1f} |")
    if not args.skip_official:
        print(f"\nspeed-up: {t_official / t_ours:.1f}x")
        if not args.shape:
            same = sum(parse_title(a) == parse_title(b[0]) for a, b in zip(official, ours))
            print(f"parsed titles identical for {same}/{len(prompts)} prompts")


if __name__ == "__main__":
    main()
