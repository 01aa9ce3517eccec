"""utils.generation: the one generation routine (batching, padding, stop tokens, seeded sampling) and its shared-prefix
KV cache, against one-by-one decoding and transformers' own `generate`."""
import json

import pytest

from utils.generation import Batching, Sampling
from utils.modeling import load_model, load_tokenizer
from utils.prompt import render_prompt

QUIET = Batching(progress=False)


def sharpened(tiny_model):
    """The random small model with sharpened logits: near-uniform ones would let float noise flip greedy ties."""
    import torch

    torch.manual_seed(0)
    model = load_model(tiny_model)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(4)
    return model


def test_batched_greedy_equals_unbatched(tiny_model, ml100k):
    """The shared routine (length-sorted, token-budget batches, left padding) gives what one-by-one decoding gives."""
    from utils.generation import generate

    model = sharpened(tiny_model)
    tok = load_tokenizer(tiny_model, padding_side="left")
    records = json.loads((ml100k / "test.json").read_text())[:12]
    prompts = [render_prompt(r) for r in records]
    prompts[3] = prompts[3][:200] + "### Response:\n"  # a much shorter prompt in the same batch
    batched = generate(model, tok, prompts, max_new_tokens=8, batching=Batching(2048, progress=False))
    single = [generate(model, tok, [p], max_new_tokens=8, batching=QUIET)[0] for p in prompts]
    assert batched == single


def test_sampling_is_seeded(tiny_model, ml100k):
    from utils.generation import generate

    model, tok = load_model(tiny_model), load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:4]]
    a = generate(model, tok, prompts, max_new_tokens=6, sampling=Sampling(2, 1.0, 7), batching=QUIET)
    b = generate(model, tok, prompts, max_new_tokens=6, sampling=Sampling(2, 1.0, 7), batching=QUIET)
    assert a == b and all(len(x) == 2 for x in a)


def test_a_sampling_generation_config_does_not_make_greedy_sample(tiny_model, ml100k):
    """Llama-3.2-Instruct ships do_sample=True in generation_config.json: greedy decoding must stay greedy, and equal
    transformers' own greedy `generate` on each prompt."""
    from utils.generation import generate, stop_token_ids

    model = sharpened(tiny_model)
    model.generation_config.update(do_sample=True, temperature=1.5, top_k=50, top_p=0.9)
    tok = load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:6]]
    ours = [generate(model, tok, prompts, max_new_tokens=8, sampling=Sampling(seed=s), batching=QUIET) for s in (1, 2)]
    assert ours[0] == ours[1]
    for prompt, (text,) in zip(prompts, ours[0]):
        ids = tok(prompt, return_tensors="pt")
        out = model.generate(**ids, do_sample=False, temperature=None, top_k=None, top_p=None, max_new_tokens=8,
                             eos_token_id=stop_token_ids(tok), pad_token_id=tok.pad_token_id)
        reference = tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)
        assert text == (reference.split("\n", 1)[0] + "\n" if "\n" in reference else reference)


def test_the_shared_prefix_is_cut_from_the_prompts_own_tokens(tiny_model, ml100k):
    """The prefix is the longest common prefix of the prompts' token ids, one token short of the shortest prompt: a
    shared text that ends inside a token does not share that token, and prefix + suffix are each prompt's ids."""
    from utils.generation import SharedPrefix, encode_prompts

    model, tok = load_model(tiny_model), load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:6]]
    enc, _ = encode_prompts(tok, prompts)
    prefix = SharedPrefix.of(model, enc)
    assert prefix is not None and all(e[:prefix.length] == prefix.ids for e in enc)
    assert len({e[prefix.length] for e in enc}) > 1  # the longest: the next token differs somewhere
    # Two texts whose shared text ends inside a token: "(1995)" and "(1996)" are single tokens of this vocabulary.
    enc2, _ = encode_prompts(tok, [prompts[0] + "(1995)", prompts[0] + "(1996)"])
    cut = SharedPrefix.of(model, enc2, min_tokens=1)
    assert enc2[0][:cut.length] == enc2[1][:cut.length] == cut.ids
    first = [tok.decode([e[cut.length]]) for e in enc2]
    assert first == ["(1995)", "(1996)"]  # "(199" is shared text, not a shared token: it stays in each suffix
    # One prompt, or prompts that share too little: no prefix (a lone prompt keeps at least one token to prefill).
    assert SharedPrefix.of(model, enc[:1], min_tokens=10_000) is None
    assert SharedPrefix.of(model, [enc[0][:1], enc[1][:1]]) is None


@pytest.mark.parametrize("temperature, n_ret", [(0.0, 1), (1.0, 2)])
def test_the_shared_prefix_changes_no_answer(tiny_model, ml100k, temperature, n_ret):
    """Greedy and seeded sampling give the same answers with and without the shared prefix, across batches of
    different widths (a much shorter prompt pads its row between the prefix and its suffix)."""
    from utils.generation import generate

    model, tok = sharpened(tiny_model), load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:24]]
    prompts[5] = prompts[5][:200] + "### Response:\n"
    runs = [generate(model, tok, prompts, max_new_tokens=8, sampling=Sampling(n_ret, temperature, 3),
                     batching=Batching(1500, share_prefix=share, progress=False)) for share in (False, True)]
    assert runs[0] == runs[1]


def test_the_shared_prefix_changes_no_beam(tiny_model, ml100k):
    from utils.constrained import beam_search
    from utils.data import load_catalog

    model, tok = sharpened(tiny_model), load_tokenizer(tiny_model, padding_side="left")
    names = load_catalog(ml100k).names[:300]
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:8]]
    plain, shared = (beam_search(model, tok, prompts, names, k=4, batching=Batching(3000, share_prefix=s,
                                                                                       progress=False))
                     for s in (False, True))
    assert [[i for i, _ in b] for b in plain] == [[i for i, _ in b] for b in shared]
    assert all(abs(x[1] - y[1]) < 1e-4 for a, b in zip(plain, shared) for x, y in zip(a, b))
