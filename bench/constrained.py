"""Benchmark: catalog-constrained beam search (K beams) against greedy decoding, same model and prompts, one process.

usage: python -m bench.constrained [--model DIR] [--n_prompts 64] [--k 5] [--category ML100K] [--trie_items 50000]
       python -m bench.constrained --model models/pretrained/SmolLM2-135M-Instruct --n_prompts 32
Greedy is utils.generation.generate with the catalog's answer-length limit (what eval/inference.py runs); constrained
is utils.constrained.beam_search with K beams (eval/inference.py --decoding constrained). Both use the same token
budget. Each is warmed up on a few prompts first; the catalog's trie is built before the timing (once per process, as
in a run), and its build time is printed apart. The default model is models/SFT/<C>; the line it prints says which
model was timed, and an untrained one is refused (bench/which_model.py says why) unless --allow_untrained.
Then a synthetic catalog of --trie_items titles is tokenized and its trie built: times, nodes, and memory (the trie's
arrays, and the peak the build allocates) per title token; memory linear in the tokens means a constant per token.
"""
import argparse
import random
import time
import tracemalloc

from bench.sampling import timed
from bench.which_model import pick_model
from utils.data import category_dir, load_catalog, load_split, sample_records
from utils.prompt import parse_title, render_prompt


def synthetic_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["Night", "Love", "Story", "Return", "Dark", "Man", "City", "War", "Star", "Blue", "Last", "Dream",
             "House", "King", "Girl", "Road", "Summer", "Ghost", "River", "Secret"]
    return [" ".join(rng.choices(words, k=rng.randint(1, 6))) + f" ({rng.randint(1920, 2024)}) #{i}"
            for i in range(n)]


def trie_scaling(tokenizer, n_items: int) -> None:
    from utils.constrained import build_trie
    from utils.prompt import completion_ids

    names = synthetic_names(n_items)
    t0 = time.perf_counter()
    seqs = completion_ids(tokenizer, names)
    t_tok = time.perf_counter() - t0
    tokens = sum(map(len, seqs))
    tracemalloc.start()
    t0 = time.perf_counter()
    trie = build_trie(seqs)
    t_build = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\ntrie of {n_items} synthetic titles ({tokens} tokens, {trie.n_nodes} nodes, depth {trie.depth}): "
          f"tokenize {t_tok:.2f} s, build {t_build:.2f} s; arrays {trie.nbytes / 2**20:.1f} MiB "
          f"({trie.nbytes / tokens:.1f} B/token), build peak {peak / 2**20:.1f} MiB ({peak / tokens:.1f} B/token)")


def main():
    import torch

    from utils.constrained import beam_search, catalog_trie
    from utils.device import default_device
    from utils.generation import Batching, generate
    from utils.modeling import load_model, load_tokenizer
    from utils.prompt import max_answer_tokens

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="model directory (default: models/SFT/<C>)")
    ap.add_argument("--category", default="ML100K")
    ap.add_argument("--n_prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=5, help="beams (the largest top-K)")
    ap.add_argument("--token_budget", type=int, default=0, help="tokens per batch (default: 32k CPU, 256k GPU)")
    ap.add_argument("--trie_items", type=int, default=50000, help="synthetic catalog size (0: skip)")
    ap.add_argument("--allow_untrained", action="store_true", help="time an untrained model anyway")
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    data = category_dir(args.category)
    catalog = load_catalog(data)
    prompts = [render_prompt(r) for r in sample_records(load_split(data, "test"), args.n_prompts, 0)]
    model_dir, what = pick_model(args.model, args.category, args.allow_untrained)
    tokenizer = load_tokenizer(model_dir, padding_side="left")
    model = load_model(model_dir, merge=True, device=default_device())
    budget = args.token_budget or (262144 if cuda else 32768)
    max_new = max_answer_tokens(tokenizer, catalog.names)
    t0 = time.perf_counter()
    trie = catalog_trie(tokenizer, catalog.names)
    t_trie = time.perf_counter() - t0
    print(f"model: {what}; {len(prompts)} test prompts; device: {torch.cuda.get_device_name() if cuda else 'CPU'} "
          f"({torch.get_num_threads()} threads); token budget {budget}; greedy max new tokens {max_new}; "
          f"{args.category} trie: {len(catalog)} items, {trie.n_nodes} nodes, depth {trie.depth}, "
          f"built in {t_trie:.2f} s", flush=True)

    batching = Batching(budget, progress=False)
    generate(model, tokenizer, prompts[:2], max_new_tokens=max_new, batching=batching)
    beam_search(model, tokenizer, prompts[:2], catalog.names, k=args.k, batching=batching)
    greedy, t_greedy = timed(lambda: generate(model, tokenizer, prompts, max_new_tokens=max_new, batching=batching))
    print(f"greedy: {t_greedy:.2f} s", flush=True)
    beams, t_beam = timed(lambda: beam_search(model, tokenizer, prompts, catalog.names, k=args.k, batching=batching))
    print("\n| decoding | seconds | prompts/s |\n|---|---:|---:|")
    for label, t in (("greedy", t_greedy), (f"constrained beam K={args.k}", t_beam)):
        print(f"| {label} | {t:.2f} | {len(prompts) / t:.1f} |")
    titles = [parse_title(g[0]) for g in greedy]
    valid = sum(catalog.index(t) is not None for t in titles)
    same = sum(t == catalog.names[b[0][0]] for t, b in zip(titles, beams))
    print(f"\nconstrained / greedy time: {t_beam / t_greedy:.2f}x (goal <= 3x)")
    print(f"greedy titles that are catalog items: {valid}/{len(prompts)}; equal to the top beam: {same}/{len(prompts)}")
    if args.trie_items:
        trie_scaling(tokenizer, args.trie_items)


if __name__ == "__main__":
    main()
