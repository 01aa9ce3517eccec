"""Self-play data for one SPRec iteration (the official data_generate.py, with its defects fixed).

usage: python train/self_play.py --model_dir models/SFT/ML100K --output_dir models/SPRec/ML100K/it0/data \
           --category ML100K --iteration 0 [--seed 42] [--train_sample_size 2048] [--valid_sample_size 256]
Draws the iteration's prompts from train (seed derived from the run seed and the iteration), generates the current
model's prediction for each, parses its title and maps it to the catalog item evaluation would ground it to
(exact name first, else the nearest by the grounding embedding; `--rejected raw` keeps the raw title as the official
code did). Pairs whose rejected equals chosen are dropped. `--negatives random` instead draws a random catalog item
that is neither the target nor in the history (the offline-negative DPO baseline; nothing is generated).
`--decoding constrained` draws the rejected items by catalog-constrained beam search (utils/constrained.py, `--beams`
beams, 5 by default) instead of greedy generation: always real catalog items, so nothing needs grounding; the best
beam is the rejected item (the `--num_negatives` best with several).
Writes dpo_train.jsonl, dpo_valid.jsonl, sft_train.jsonl (the iteration's fresh positives) and summary.json.
"""
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.data import category_dir, load_catalog, load_split  # noqa: E402
from utils.io import (  # noqa: E402
    UserError,
    check_same_settings,
    finish_stage,
    is_done,
    run_cli,
    start_stage,
    write_json,
    write_jsonl,
    write_run_config,
)
from utils.prompt import parse_title, record_history, record_target, render_completion, render_prompt  # noqa: E402


def iteration_seed(seed: int, iteration: int) -> int:
    """One seed per run; every iteration draws from its own derived stream."""
    return seed * 1000 + iteration


def random_negative(record, catalog, rng: random.Random) -> str:
    """A random catalog item that is neither the record's target nor one of its history items."""
    excluded = {record_target(record), *record_history(record)}
    if len(excluded) >= len(catalog):
        raise UserError("the catalog has no item outside a record's target and history to use as a negative")
    while True:
        name = catalog.names[rng.randrange(len(catalog))]
        if name not in excluded:
            return name


def ground_to_catalog(titles, catalog, embedding_model: str) -> list[str]:
    """Each title mapped to a catalog name: itself when it is one, else the item evaluation grounds it to (its
    nearest; an empty title too). Each distinct non-catalog title is grounded once."""
    from utils.grounding import ground_titles

    todo = [t for t in dict.fromkeys(titles) if catalog.index(t) is None]
    if not todo:
        return list(titles)
    top = ground_titles(todo, catalog, 1, embedding_model or None)[:, 0]
    grounded = {t: catalog.names[i] for t, i in zip(todo, top)}
    return [grounded.get(t, t) for t in titles]


def run(output_dir: str, model_dir: str = "", category: str = "ML100K", data_dir: str = "", iteration: int = 0,
        seed: int = 42, train_sample_size: int = 2048, valid_sample_size: int = 256, spare_ratio: float = 0.1,
        negatives: str = "self", rejected: str = "grounded", temperature: float = 0.0, num_negatives: int = 1,
        token_budget: int = 32768, embedding_model: str = "", trust_remote_code: bool = False,
        decoding: str = "greedy", beams: int = 5):
    args = dict(locals())
    if decoding != "constrained":  # the beam count changes nothing else
        del args["beams"]
    from utils.modeling import process_state

    state = process_state()
    out = Path(output_dir)
    if is_done(out):
        check_same_settings(out, "self_play", args, f"the self-play data {out}")
        if state.is_main_process:
            print(f"[self-play] {out} is complete; skipping")
        return
    if negatives not in ("self", "random") or rejected not in ("grounded", "raw"):
        raise UserError("--negatives must be 'self' or 'random'; --rejected 'grounded' or 'raw'")
    if decoding not in ("greedy", "constrained"):
        raise UserError(f"--decoding must be 'greedy' or 'constrained', got {decoding!r}")
    if decoding == "constrained" and (temperature > 0 or not 1 <= num_negatives <= beams):
        raise UserError("--decoding constrained is a deterministic beam search: it needs --temperature 0 and "
                        "1 <= --num_negatives <= --beams")
    if decoding == "greedy" and num_negatives > 1 and temperature <= 0:
        raise UserError("--num_negatives > 1 needs sampling: set --temperature > 0")
    from utils.io import check_output_dir
    from utils.modeling import check_model_dir

    if negatives == "self":  # the model samples the negatives: check it before drawing anything
        if not model_dir:
            raise UserError("--model_dir is required with --negatives self (the model whose predictions are sampled)")
        model_dir = check_model_dir(model_dir, "--model_dir")
    check_output_dir(out)
    data = Path(data_dir) if data_dir else category_dir(category)
    catalog = load_catalog(data)
    train = [r for r in load_split(data, "train") if catalog.index(record_target(r)) is not None]
    rng = random.Random(iteration_seed(seed, iteration))
    wanted = train_sample_size + valid_sample_size
    drawn = rng.sample(train, min(len(train), math.ceil(wanted * (1 + spare_ratio))))
    prompts = [render_prompt(r) for r in drawn]
    if state.is_main_process:
        how = f"{negatives} negatives" + (f", {decoding} decoding" if negatives == "self" else "")
        print(f"[self-play] iteration {iteration}: {len(drawn)} prompts drawn ({how}). "
              f"First prompt:\n{prompts[0]}", flush=True)

    t0 = time.time()
    if negatives == "random":
        outputs = [[render_completion(random_negative(r, catalog, rng))] for r in drawn]
    else:
        from utils.generation import generate_sharded, max_answer_tokens
        from utils.modeling import load_model, load_tokenizer

        tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code, padding_side="left")
        model = load_model(model_dir, merge=True, trust_remote_code=trust_remote_code, device=state.device)
        if decoding == "constrained":
            from utils.constrained import beam_search_sharded

            if len(catalog) < num_negatives:
                raise UserError(f"--num_negatives {num_negatives} is more than the catalog's {len(catalog)} items")
            ranked = beam_search_sharded(model, tokenizer, prompts, catalog.names, k=beams, token_budget=token_budget,
                                         desc="self-play constrained beams")
            outputs = [[render_completion(catalog.names[i]) for i, _ in b[:num_negatives]] for b in ranked]
        else:
            outputs = generate_sharded(model, tokenizer, prompts,
                                       max_new_tokens=max_answer_tokens(tokenizer, catalog.names),
                                       token_budget=token_budget, num_return_sequences=num_negatives,
                                       temperature=temperature, seed=iteration_seed(seed, iteration),
                                       desc="self-play sampling")
    if not state.is_main_process:
        state.wait_for_everyone()
        return

    titles = [parse_title(t) for texts in outputs for t in texts]
    mapped = ground_to_catalog(titles, catalog, embedding_model) if rejected == "grounded" else titles
    pairs, counts = [], {"drawn": len(drawn), "generated": len(titles), "parsed": 0, "valid": 0,
                         "dropped_equal": 0, "dropped_empty": 0}
    per_record = num_negatives if negatives == "self" else 1
    for j, r in enumerate(drawn):
        target = record_target(r)
        span = slice(j * per_record, (j + 1) * per_record)
        for title, neg in zip(titles[span], mapped[span]):
            counts["parsed"] += bool(title)
            counts["valid"] += catalog.index(title) is not None
            if not neg:
                counts["dropped_empty"] += 1
            elif neg == target:
                counts["dropped_equal"] += 1
            else:
                pairs.append({"prompt": prompts[j], "chosen": render_completion(target),
                              "rejected": render_completion(neg), "rejected_raw": title, "record": j})
    # The first pairs fill train, the next valid; the spare draws make up for dropped ones.
    train_records = sorted({p["record"] for p in pairs[:train_sample_size * per_record]})
    dpo_train = pairs[:train_sample_size * per_record]
    dpo_valid = pairs[len(dpo_train):len(dpo_train) + valid_sample_size * per_record]
    counts.update(kept_train=len(dpo_train), kept_valid=len(dpo_valid), seconds=round(time.time() - t0, 1))
    if len(dpo_train) < train_sample_size * per_record:
        print(f"[self-play] warning: only {len(dpo_train)} train pairs for {train_sample_size} wanted "
              f"(raise --spare_ratio)", file=sys.stderr)
    if not dpo_train:
        raise UserError(f"iteration {iteration}: no usable pair (every prediction was empty or equal to the target)")

    tmp = start_stage(out)
    write_jsonl(tmp / "dpo_train.jsonl", dpo_train)
    write_jsonl(tmp / "dpo_valid.jsonl", dpo_valid or dpo_train[:1])
    write_jsonl(tmp / "sft_train.jsonl", [drawn[j] for j in train_records])
    write_json(tmp / "summary.json", counts)
    write_run_config(tmp, "self_play", args, {"world_size": state.num_processes})
    finish_stage(out)
    print(f"[self-play] wrote {out}: {counts}", flush=True)
    state.wait_for_everyone()


if __name__ == "__main__":
    run_cli(run)
