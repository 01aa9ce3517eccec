"""The one generation routine, shared by self-play sampling and test inference.

Prompts are sorted by length and batched by a token budget (not a fixed count), left-padded, and decoded by
transformers' `generate` with a fresh generation config (greedy unless a temperature is given, whatever the model's
own generation_config.json says); a row stops at end-of-sequence or at the first newline (the answer is one quoted
title on one line; the official contract, utils/prompt.py, runs to end-of-sequence or the token limit instead).
Every prompt of a category starts with the same tokens (the template's preamble and instruction, about 70 of
SmolLM2's ~190): their KV cache is computed once per call and handed to `generate`, which then prefills only each
batch's suffixes (`SharedPrefix`). Under several processes the prompts are sharded across them and
gathered back in order. Catalog-constrained beam search (utils/constrained.py) reuses the batching, padding, shared
prefix, and its own prefill and one-token step here.

Why `generate` and not a hand-written loop: a loop that drops finished rows from the batch and its cache and computes
logits for the last position only is 1.15x (SmolLM2) to 1.29x (the small model) faster on a 2-core CPU, on the same
batches, stop tokens and shared prefix, one thread (docs/performance.md): not enough to carry code tied to
transformers' cache internals.
"""
import copy
from dataclasses import dataclass, replace

_STOP_IDS = {}


@dataclass(frozen=True)
class Batching:
    """How prompts are batched, shared by generation and constrained beam search: a batch's token budget (its rows
    times prompt + new tokens), its most rows, the prompts' shared prefix computed once or not (`SharedPrefix`; the
    same batches, the same answers), and the progress bar (its label; none without `progress`)."""
    token_budget: int = 32768
    max_batch: int = 512
    share_prefix: bool = True
    desc: str = ""
    progress: bool = True


@dataclass(frozen=True)
class Sampling:
    """What generation draws for each prompt: `n` answers, greedy at temperature 0, else sampled from the whole
    distribution at that temperature, seeded with `seed`."""
    n: int = 1
    temperature: float = 0.0
    seed: int = 0


GREEDY, BATCHING = Sampling(), Batching()


def stop_token_ids(tokenizer) -> list[int]:
    """EOS and every token whose text contains a newline: generating one of them ends the answer line."""
    key = (tokenizer.name_or_path, len(tokenizer))
    if key not in _STOP_IDS:
        ids = {i for i, text in enumerate(tokenizer.batch_decode([[i] for i in range(len(tokenizer))])) if "\n" in text}
        ids.add(tokenizer.eos_token_id)
        _STOP_IDS[key] = sorted(ids)
    return _STOP_IDS[key]


def batches(lengths, order, token_budget, max_new_tokens, max_batch):
    """Prompt indices in batches whose (prompts x (width + new tokens)) stays within the token budget."""
    batch, width = [], 0
    for i in order:  # longest first, so a batch's width is its first prompt's length
        width = width or lengths[i]
        if batch and (len(batch) + 1) * (width + max_new_tokens) > token_budget or len(batch) >= max_batch:
            yield batch
            batch, width = [], lengths[i]
        batch.append(i)
    if batch:
        yield batch


def encode_prompts(tokenizer, prompts):
    """Token ids of each prompt (with the tokenizer's special tokens, as in training) and their lengths."""
    enc = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    return enc, [len(x) for x in enc]


class SharedPrefix:
    """The token prefix all prompts share and its KV cache, computed once; `cache(n)` serves a batch of n rows.

    The prefix is cut from the prompts' own token ids (their longest common prefix, one token short of the shortest
    prompt so every row prefills at least one token), never tokenized apart: where the text's shared part ends inside
    a token, that token is simply not shared, and prefix + suffix are exactly each prompt's ids. A batch's rows are
    then [prefix][padding][suffix]: the attention mask hides the padding and the position ids count real tokens only,
    so every row sees what it would see alone."""

    def __init__(self, model, ids: list[int]):
        import torch

        self.ids, self.length = ids, len(ids)
        device = next(model.parameters()).device
        with torch.inference_mode():
            self._cache = model(input_ids=torch.tensor([ids], device=device), use_cache=True).cache

    @classmethod
    def of(cls, model, enc, min_tokens: int = 8) -> "SharedPrefix | None":
        """The prefix of the encoded prompts `enc`, or None when they share fewer than `min_tokens` tokens."""
        first, n = enc[0], min(len(e) for e in enc) - 1
        for e in enc[1:]:
            n = next((j for j in range(n) if e[j] != first[j]), n)
        return cls(model, first[:n]) if n >= min_tokens else None

    def cache(self, n: int):
        cache = copy.deepcopy(self._cache)
        cache.batch_repeat_interleave(n)
        return cache


def left_pad(enc, batch, pad_id: int, repeat: int = 1):
    """(ids, attention mask) of the batch's prompts, each repeated `repeat` times, left-padded: every prompt ends
    where generation starts."""
    import torch

    width = max(len(enc[i]) for i in batch)
    ids = torch.full((len(batch) * repeat, width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch) * repeat, width), dtype=torch.long)
    for row, i in enumerate(batch):
        ids[row * repeat:(row + 1) * repeat, width - len(enc[i]):] = torch.tensor(enc[i])
        mask[row * repeat:(row + 1) * repeat, width - len(enc[i]):] = 1
    return ids, mask


def pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def prefill(model, ids, mask, prefix: SharedPrefix | None = None):
    """Run the left-padded prompts (the suffixes after `prefix`, when given): (cache, last-position logits, the next
    position of each row, the attention mask over the whole cache)."""
    import torch

    start, cache = (prefix.length, prefix.cache(ids.shape[0])) if prefix is not None else (0, None)
    pos = start + (mask.cumsum(1) - 1).clamp(min=0)
    if prefix is not None:
        mask = torch.cat([mask.new_ones((mask.shape[0], start)), mask], dim=1)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True, logits_to_keep=1)
    return out.cache, out.logits[:, -1], pos[:, -1] + 1, mask


def extend(model, tokens, mask, next_pos, cache):
    """Feed one new token per row: (cache, its logits, the extended mask). `mask` and `next_pos` already hold only
    the rows of `cache` that go on."""
    import torch

    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
    out = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos[:, None], cache=cache,
                use_cache=True)
    return out.cache, out.logits[:, -1], mask


def end_token_ids(model, tokenizer) -> list[int]:
    """The end-of-sequence ids a model's own generation stops at: the tokenizer's EOS and its generation config's."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    return sorted({tokenizer.eos_token_id, *ids})


def generate(model, tokenizer, prompts, *, max_new_tokens: int, one_line: bool = True, sampling: Sampling = GREEDY,
             batching: Batching = BATCHING) -> list[list[str]]:
    """Generated answer texts for each prompt (a list of `sampling.n` each), in the order given.

    Greedy when the temperature is 0, else sampled (seeded). With `one_line` (the project's contract) a row stops at
    its first newline and its text is cut after it; otherwise (the official contract) a row runs to end-of-sequence or
    `max_new_tokens`, as the authors' generation did.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import GenerationConfig

    if not prompts:
        return []
    device = next(model.parameters()).device
    enc, lengths = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    prefix = SharedPrefix.of(model, enc) if batching.share_prefix else None
    suffixes = [e[prefix.length:] for e in enc] if prefix else enc
    pad = pad_token_id(tokenizer)
    temperature = sampling.temperature
    # Everything set here, nothing inherited: top_k 0 and top_p 1 sample from the whole distribution.
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                              **({"temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {}),
                              eos_token_id=stop_token_ids(tokenizer) if one_line else end_token_ids(model, tokenizer),
                              pad_token_id=pad)
    n_ret = sampling.n
    out = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=batching.desc or "generating", disable=not batching.progress, leave=False)
    with torch.inference_mode(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(sampling.seed)  # sampling is seeded, and the caller's random state is left as it was
        for batch in batches(lengths, order, max(batching.token_budget // n_ret, 1), max_new_tokens,
                             batching.max_batch):
            ids, mask = left_pad(suffixes, batch, pad, n_ret)
            cache = None
            if prefix is not None:  # [prefix][padding][suffix]: generate prefills what the cache does not hold
                ids = torch.cat([torch.tensor([prefix.ids]).expand(ids.shape[0], -1), ids], dim=1)
                mask = torch.cat([mask.new_ones((mask.shape[0], prefix.length)), mask], dim=1)
                cache = prefix.cache(ids.shape[0])
            new = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), cache=cache,
                                 generation_config=config)[:, ids.shape[1]:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, i in enumerate(batch):
                chunk = texts[row * n_ret:(row + 1) * n_ret]
                out[i] = [t.split("\n", 1)[0] + "\n" if one_line and "\n" in t else t for t in chunk]
            bar.update(len(batch))
    bar.close()
    return out


def generate_sharded(model, tokenizer, prompts, **kwargs) -> list[list[str]]:
    """`generate` under accelerate: each process takes every world_size-th prompt; all get the full result."""
    from utils.device import process_state

    sampling = kwargs.get("sampling", GREEDY)
    kwargs["sampling"] = replace(sampling, seed=sampling.seed + process_state().process_index)
    return sharded(generate, model, tokenizer, prompts, **kwargs)


def sharded(fn, model, tokenizer, prompts, **kwargs) -> list:
    """`fn(model, tokenizer, prompts, **kwargs)` (a per-prompt result list) under accelerate: each process takes
    every world_size-th prompt; all get the full result, in order."""
    from accelerate.utils import gather_object

    from utils.device import process_state

    state = process_state()
    if state.num_processes == 1:
        return fn(model, tokenizer, prompts, **kwargs)
    mine = list(range(state.process_index, len(prompts), state.num_processes))
    batching = kwargs.get("batching", BATCHING)
    kwargs["batching"] = replace(batching, progress=batching.progress and state.is_main_process)
    texts = fn(model, tokenizer, [prompts[i] for i in mine], **kwargs)
    gathered = gather_object([(i, t) for i, t in zip(mine, texts)])
    out = [None] * len(prompts)
    for i, t in gathered:
        out[i] = t
    return out

