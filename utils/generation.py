"""The one generation routine, shared by self-play sampling and test inference.

Prompts are sorted by length and batched by a token budget (not a fixed count), left-padded, decoded with the KV
cache, and a row stops at end-of-sequence or at the first newline (the answer is one quoted title on one line).
Under several processes the prompts are sharded across them and gathered back in order.
"""
from utils.prompt import render_completion

_STOP_IDS = {}


def stop_token_ids(tokenizer) -> list[int]:
    """EOS and every token whose text contains a newline: generating one of them ends the answer line."""
    key = (tokenizer.name_or_path, len(tokenizer))
    if key not in _STOP_IDS:
        ids = {i for i, text in enumerate(tokenizer.batch_decode([[i] for i in range(len(tokenizer))])) if "\n" in text}
        ids.add(tokenizer.eos_token_id)
        _STOP_IDS[key] = sorted(ids)
    return _STOP_IDS[key]


def max_answer_tokens(tokenizer, names, margin: int = 4) -> int:
    """New-token limit for an answer: the longest catalog title as a completion, plus a small margin."""
    longest = sorted(names, key=len, reverse=True)[:200]  # the longest by characters hold the longest in tokens
    return max(len(tokenizer(render_completion(n), add_special_tokens=False).input_ids) for n in longest) + margin


def _batches(lengths, order, token_budget, max_new_tokens, max_batch):
    batch, width = [], 0
    for i in order:  # longest first, so a batch's width is its first prompt's length
        width = width or lengths[i]
        if batch and (len(batch) + 1) * (width + max_new_tokens) > token_budget or len(batch) >= max_batch:
            yield batch
            batch, width = [], lengths[i]
        batch.append(i)
    if batch:
        yield batch


def generate(model, tokenizer, prompts, *, max_new_tokens: int, token_budget: int = 32768, max_batch: int = 512,
             num_return_sequences: int = 1, temperature: float = 0.0, seed: int = 0, desc: str = "generating",
             progress: bool = True) -> list[list[str]]:
    """Generated answer texts for each prompt (a list of `num_return_sequences` each), in the order given.

    Greedy when temperature is 0. Each text is cut after its first newline.
    """
    import torch
    from tqdm.auto import tqdm

    if not prompts:
        return []
    device = next(model.parameters()).device
    enc = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    lengths = [len(x) for x in enc]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    stop = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = temperature > 0
    gen_kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stop, pad_token_id=pad_id, do_sample=sampling,
                      num_return_sequences=num_return_sequences)
    if sampling:
        gen_kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
    else:
        gen_kwargs.update(temperature=None, top_k=None, top_p=None)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    out = [None] * len(prompts)
    budget = max(token_budget // max(1, num_return_sequences), 1)
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    try:
        with torch.inference_mode():
            for batch in _batches(lengths, order, budget, max_new_tokens, max_batch):
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):  # left padding: every prompt ends where generation starts
                    ids[row, width - lengths[i]:] = torch.tensor(enc[i])
                    mask[row, width - lengths[i]:] = 1
                gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), **gen_kwargs)
                texts = tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
                for row, i in enumerate(batch):
                    chunk = texts[row * num_return_sequences:(row + 1) * num_return_sequences]
                    out[i] = [t.split("\n", 1)[0] + "\n" if "\n" in t else t for t in chunk]
                bar.update(len(batch))
    finally:
        bar.close()
        torch.random.set_rng_state(generator_state)
    return out


def generate_sharded(model, tokenizer, prompts, **kwargs) -> list[list[str]]:
    """`generate` under accelerate: each process takes every world_size-th prompt; all get the full result."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    if state.num_processes == 1:
        return generate(model, tokenizer, prompts, **kwargs)
    mine = list(range(state.process_index, len(prompts), state.num_processes))
    kwargs["seed"] = kwargs.get("seed", 0) + state.process_index
    kwargs["progress"] = kwargs.get("progress", True) and state.is_main_process
    texts = generate(model, tokenizer, [prompts[i] for i in mine], **kwargs)
    gathered = gather_object([(i, t) for i, t in zip(mine, texts)])
    out = [None] * len(prompts)
    for i, t in gathered:
        out[i] = t
    return out

