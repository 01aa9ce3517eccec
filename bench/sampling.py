"""Benchmark: the shared generation routine against the official SPRec sampling settings, and the shared-prefix KV
cache on and off, same model and prompts, one process.

usage: python -m bench.sampling [--model models/SFT/ML100K] [--n_prompts 1024] [--category ML100K]
       python -m bench.sampling --model runs/smollm2/SFT/ML100K --n_prompts 64 --skip_official   # SmolLM2
       python -m bench.sampling --shape llama-1b --n_prompts 2804        # random Llama-3.2-1B-shaped model (GPU)
Official settings: batches of 64 in prompt order, 128 new tokens for every row (HF generate; fp16 on GPU).
Ours: utils.generation.generate (length-sorted token-budget batches, stop at newline/EOS,
new-token limit from the catalog's longest title; bf16 on GPU), without and with the prompts' shared prefix computed
once (`share_prefix`; utils.generation says why it decodes with transformers' `generate`). Each is warmed up on a
batch of the same shape before anything is timed, and the two of ours are timed alternately, `--repeats` times each
(a machine that warms up or gets busier during the run then weighs on both alike): the table gives each one's median,
the ratio is the median of the paired ratios. Prints which model was timed, the times, the ratios, how often the
answers agree and how many stopped before the limit.
The default model is models/SFT/<C>; an untrained one is refused (bench/which_model.py says why) unless
--allow_untrained.
"""
import argparse
import statistics
import time

from utils.data import category_dir, load_catalog, load_split, sample_records
from utils.prompt import parse_title, render_prompt


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

    from bench.which_model import pick_model
    from utils.device import default_device
    from utils.generation import Batching, SharedPrefix, encode_prompts, generate
    from utils.modeling import load_model, load_tokenizer
    from utils.prompt import max_answer_tokens

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model directory (default: models/SFT/<C>)")
    ap.add_argument("--shape", default="", choices=["", "llama-1b", "small"])
    ap.add_argument("--category", default="ML100K")
    ap.add_argument("--n_prompts", type=int, default=1024)
    ap.add_argument("--token_budget", type=int, default=0, help="ours: tokens per batch (default: 32k CPU, 256k GPU)")
    ap.add_argument("--tokenizer", default="", help="with --shape: the random model's tokenizer (default: the model's)")
    ap.add_argument("--skip_official", action="store_true")
    ap.add_argument("--allow_untrained", action="store_true", help="time an untrained model anyway")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each of ours (median)")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    data = category_dir(args.category)
    catalog = load_catalog(data)
    records = sample_records(load_split(data, "train"), args.n_prompts, 0)
    prompts = [render_prompt(r) for r in records]
    device = default_device()
    if args.shape:  # a random model of a real shape: for the GPU prefill floor, not for titles
        from bench.random_model import random_llama

        model_dir = args.tokenizer or args.model or pick_model("", args.category, allow_untrained=True)[0]
        tokenizer = load_tokenizer(model_dir, padding_side="left")
        model_ours = random_llama(args.shape, tokenizer).to(device).eval()
        if not cuda:
            model_ours = model_ours.float()
        model_official = model_ours.to(torch.float16) if cuda else model_ours
        name = f"random {args.shape} Llama (untrained: every row runs to the limit)"
    else:
        model_dir, name = pick_model(args.model, args.category, args.allow_untrained)
        tokenizer = load_tokenizer(model_dir, padding_side="left")
        model_ours = load_model(model_dir, merge=True, device=device)
        model_official = model_ours
    budget = args.token_budget or (262144 if cuda else 32768)
    max_new = max_answer_tokens(tokenizer, catalog.names)
    enc = encode_prompts(tokenizer, prompts)[0]
    prefix = SharedPrefix.of(model_ours, enc)
    device_name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"model: {name}\n{len(prompts)} prompts of {sum(map(len, enc)) / len(enc):.0f} tokens on average, "
          f"{prefix.length if prefix else 0} of them shared; device: {device_name}; "
          f"ours: token budget {budget}, max new tokens {max_new}")

    rows, texts = [], {}
    if not args.skip_official:
        official_generate(model_official, tokenizer, prompts[:64])  # warm-up, same batch shape
        texts["official"], t = timed(lambda: official_generate(model_official, tokenizer, prompts))
        rows.append(("official (batch 64, 128 new tokens)", t))
    if cuda and args.shape:
        model_ours = model_ours.to(torch.bfloat16)
    labels = {share: f"ours, shared prefix {'once' if share else 'in every row'}" for share in (False, True)}

    def run(some, share):
        return generate(model_ours, tokenizer, some, max_new_tokens=max_new,
                        batching=Batching(budget, share_prefix=share, progress=False))

    for share in labels:  # both warmed up before either is timed
        run(prompts[:64], share)
    runs = {share: [] for share in labels}
    for _ in range(max(1, args.repeats)):  # alternately: plain, shared, plain, shared, ...
        for share, label in labels.items():
            out, t = timed(lambda share=share: run(prompts, share))
            texts[label] = [o[0] for o in out]
            runs[share].append(t)
    for share, label in labels.items():
        rows.append((label, statistics.median(runs[share])))
    paired = statistics.median(a / b for a, b in zip(runs[False], runs[True]))
    print("\n| method | seconds | prompts/s |\n|---|---:|---:|")
    for label, t in rows:
        print(f"| {label} | {t:.2f} | {len(prompts) / t:.1f} |")
    times = dict(rows)
    plain, shared = (label for label, _ in rows[-2:])
    stopped = sum(t.endswith("\n") for t in texts[shared])
    print(f"\nshared prefix: {paired:.2f}x (median of {len(runs[True])} paired ratios); answers identical for "
          f"{sum(a == b for a, b in zip(texts[plain], texts[shared]))}/{len(prompts)}; "
          f"{stopped}/{len(prompts)} answers stopped at a newline before the limit")
    if not args.skip_official:
        print(f"ours (shared prefix) vs official: {times[rows[0][0]] / times[shared]:.1f}x")
        if not args.shape:
            same = sum(parse_title(a) == parse_title(b) for a, b in zip(texts["official"], texts[shared]))
            print(f"parsed titles identical for {same}/{len(prompts)} prompts")


if __name__ == "__main__":
    main()
