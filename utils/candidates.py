"""The candidate protocol (S-DPO, LLaRA, DMPO): rank the target among 19 items the user never interacted with.

Drawing. For each test record, `draw_candidates` takes the target and n - 1 = 19 catalog items outside everything the
dataset shows the user interacting with (utils.data.interacted: the history and target of each of the user's records
in train, valid and test), uniformly without replacement, and shuffles the n; the random stream is seeded by the
protocol's seed and the user alone, so every model evaluated with the same seed is ranked on the same candidates
(paired comparisons), whatever the order or subset of users.

Scoring. `candidate_scores` gives each candidate the model's log-probability of its completion after the prompt,
`render_completion(name)` tokenized as a completion (utils.prompt.completion_ids): the sum of the full-vocabulary
log-softmax of its tokens, not length-normalised, as constrained beam search scores (utils/constrained.py). Prompts are
batched as utils.generation batches them (sorted by length, their shared prefix computed once); each batch's prompts
are prefilled once, their KV cache repeated n times, and the n completions (right-padded) run in one forward pass
over it: n + 1 passes' work becomes one prefill and one short pass. The ranking is by score, best first, ties in the
drawn order (the shuffle makes that order random; the target is not first by construction).
"""
import random

from utils.generation import Batching
from utils.io import UserError

N_CANDIDATES = 20
# How prompts are batched for scoring (utils.generation.Batching); fewer rows than generation's 512, since each prompt
# brings n rows of completions.
BATCHING = Batching(max_batch=64, desc="candidate scoring")


def draw_candidates(record, catalog, by_user: dict, seed: int, n: int = N_CANDIDATES) -> list[int]:
    """The catalog rows of the record's target and n - 1 items its user never interacted with, in a seeded shuffled
    order."""
    from utils.data import interacted
    from utils.prompt import record_target

    target = catalog.index(record_target(record))
    if target is None:
        raise UserError(f"the candidate protocol needs a catalog target, got {record_target(record)!r}")
    excluded = {i for i in map(catalog.index, interacted(record, by_user)) if i is not None}
    free = [i for i in range(len(catalog)) if i not in excluded]
    if len(free) < n - 1:
        raise UserError(f"user {record.get('user')!r}: {len(free)} catalog items outside their interactions, fewer "
                        f"than the {n - 1} negative candidates")
    rng = random.Random(f"candidates:{seed}:{record.get('user')}")  # str seeds hash the same in every process
    rows = [target, *rng.sample(free, n - 1)]
    rng.shuffle(rows)
    return rows


def candidate_scores(model, tokenizer, prompts, candidates, *, batching: Batching = BATCHING,
                     logit_budget: int = 1 << 27) -> list[list[float]]:
    """For each prompt, the log-probability of each of its candidates' completions (candidates[i]: item names), in
    the order given.

    A batch holds as many prompts as the token budget allows for n rows of (prompt + longest completion) each, and
    as `logit_budget` allows for the completion pass's logits (rows x completion tokens x vocabulary floats)."""
    import torch
    from tqdm.auto import tqdm

    from utils.generation import SharedPrefix, batches, encode_prompts, left_pad, pad_token_id, prefill
    from utils.prompt import completion_ids

    if len(prompts) != len(candidates):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    if not prompts:
        return []
    n = len(candidates[0])
    if n < 1 or any(len(c) != n for c in candidates):
        raise UserError("every prompt needs the same number (>= 1) of candidates")
    device = next(model.parameters()).device
    completions = [completion_ids(tokenizer, c) for c in candidates]
    longest = max(len(ids) for cs in completions for ids in cs)
    if min(len(ids) for cs in completions for ids in cs) == 0:
        raise UserError("a candidate's completion has no tokens")
    enc, lengths = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    prefix = SharedPrefix.of(model, enc) if batching.share_prefix else None
    suffixes = [e[prefix.length:] for e in enc] if prefix else enc
    per_prompt = n * longest * model.config.vocab_size  # logits of one prompt's completion pass
    max_batch = max(1, min(batching.max_batch, logit_budget // per_prompt))
    out = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=batching.desc or BATCHING.desc, disable=not batching.progress, leave=False)
    with torch.inference_mode():
        for batch in batches(lengths, order, max(batching.token_budget // n, 1), longest, max_batch):
            ids, mask = left_pad(suffixes, batch, pad_token_id(tokenizer))
            cache, logits, next_pos, mask = prefill(model, ids.to(device), mask.to(device), prefix)
            scores = _score_completions(model, cache, logits, next_pos, mask, [completions[i] for i in batch],
                                        pad_token_id(tokenizer))
            for row, i in enumerate(batch):
                out[i] = scores[row].tolist()
            bar.update(len(batch))
    bar.close()
    return out


def _score_completions(model, cache, logits, next_pos, mask, completions, pad_id: int):
    """(prompts, n) log-probabilities of each prompt's n completions (token id lists) after its prefilled cache."""
    import torch

    b, n = len(completions), len(completions[0])
    dev = logits.device
    width = max(len(ids) for cs in completions for ids in cs)
    tok = torch.full((b * n, width), pad_id, dtype=torch.long)
    real = torch.zeros((b * n, width), dtype=torch.long)
    for row, ids in enumerate(ids for cs in completions for ids in cs):
        tok[row, :len(ids)] = torch.tensor(ids)
        real[row, :len(ids)] = 1
    tok, real = tok.to(dev), real.to(dev)
    # each token's log-probability in float32, their sum in float64 (a sum of ~20 terms of ~-5 in float32 is off by
    # ~1e-5: enough to swap two near-tied candidates between a batched and an unbatched run)
    first = torch.log_softmax(logits.float(), -1).repeat_interleave(n, 0).gather(1, tok[:, :1]).squeeze(1).double()
    if width == 1:
        return first.view(b, n)
    cache.batch_repeat_interleave(n)  # each prompt's cache once per candidate: the prompt is never run again
    step = torch.arange(width - 1, device=dev)
    out = model(input_ids=tok[:, :-1], attention_mask=torch.cat([mask.repeat_interleave(n, 0), real[:, :-1]], 1),
                position_ids=next_pos.repeat_interleave(n, 0)[:, None] + step, cache=cache, use_cache=True)
    logp = torch.log_softmax(out.logits.float(), -1).gather(2, tok[:, 1:, None]).squeeze(2).double()
    return (first + (logp * real[:, 1:]).sum(1)).view(b, n)


def candidate_scores_sharded(model, tokenizer, prompts, candidates, **kwargs) -> list[list[float]]:
    """`candidate_scores` under accelerate: prompts sharded across processes, all get the full result in order."""
    from utils.generation import sharded

    if len(prompts) != len(candidates):
        raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidate lists")
    return sharded(_scores_of, model, tokenizer, list(zip(prompts, candidates)), **kwargs)


def _scores_of(model, tokenizer, pairs, **kwargs):
    return candidate_scores(model, tokenizer, [p for p, _ in pairs], [c for _, c in pairs], **kwargs)
