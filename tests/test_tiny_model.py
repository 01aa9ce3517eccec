import json

from utils.modeling import TINY_MARKER, is_project_built, load_model, load_tokenizer
from utils.prompt import render_completion, render_prompt


def test_build_reload_generate(tiny_model, ml100k):
    from utils.generation import generate

    assert (tiny_model / "model.safetensors").is_file() and not list(tiny_model.glob("*.bin"))
    info = json.loads((tiny_model / TINY_MARKER).read_text())
    assert info["parameters"] > 0 and is_project_built(tiny_model)
    tok = load_tokenizer(tiny_model, padding_side="left")
    assert tok.pad_token and tok.eos_token and tok.pad_token_id != tok.eos_token_id
    model = load_model(tiny_model)
    record = json.loads((ml100k / "test.json").read_text())[0]
    out = generate(model, tok, [render_prompt(record)], max_new_tokens=5, progress=False)
    assert len(out) == 1 and isinstance(out[0][0], str)


def test_prompt_ends_on_a_token_boundary(tiny_model, ml100k):
    """prompt + completion tokenizes as prompt, then completion: training sees what generation sees."""
    tok = load_tokenizer(tiny_model)
    for record in json.loads((ml100k / "test.json").read_text())[:50]:
        p, c = render_prompt(record), render_completion(record["target"])
        assert tok(p + c).input_ids[:len(tok(p).input_ids)] == tok(p).input_ids
        assert tok.decode(tok(p + c).input_ids) == p + c  # byte-level: lossless


def test_batched_greedy_equals_unbatched(tiny_model, ml100k):
    """The shared routine (length-sorted, token-budget batches, left padding) gives what one-by-one decoding gives."""
    import torch

    from utils.generation import generate

    torch.manual_seed(0)
    model = load_model(tiny_model)
    with torch.no_grad():  # random weights give near-uniform logits; sharpen them so greedy ties cannot flip
        model.get_output_embeddings().weight.mul_(4)
    tok = load_tokenizer(tiny_model, padding_side="left")
    records = json.loads((ml100k / "test.json").read_text())[:12]
    prompts = [render_prompt(r) for r in records]
    prompts[3] = prompts[3][:200] + "### Response:\n"  # a much shorter prompt in the same batch
    batched = generate(model, tok, prompts, max_new_tokens=8, token_budget=2048, progress=False)
    single = [generate(model, tok, [p], max_new_tokens=8, progress=False)[0] for p in prompts]
    assert batched == single


def test_sampling_is_seeded(tiny_model, ml100k):
    from utils.generation import generate

    model, tok = load_model(tiny_model), load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:4]]
    a = generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, num_return_sequences=2, seed=7,
                 progress=False)
    b = generate(model, tok, prompts, max_new_tokens=6, temperature=1.0, num_return_sequences=2, seed=7,
                 progress=False)
    assert a == b and all(len(x) == 2 for x in a)


def test_a_sampling_generation_config_does_not_make_greedy_sample(tiny_model, ml100k):
    """Llama-3.2-Instruct ships do_sample=True in generation_config.json: greedy decoding must stay greedy, and equal
    transformers' own greedy `generate` on each prompt."""
    import torch

    from utils.generation import generate, stop_token_ids

    torch.manual_seed(0)
    model = load_model(tiny_model)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(4)
    model.generation_config.update(do_sample=True, temperature=1.5, top_k=50, top_p=0.9)
    tok = load_tokenizer(tiny_model, padding_side="left")
    prompts = [render_prompt(r) for r in json.loads((ml100k / "test.json").read_text())[:6]]
    ours = [generate(model, tok, prompts, max_new_tokens=8, seed=s, progress=False) for s in (1, 2)]
    assert ours[0] == ours[1]
    for prompt, (text,) in zip(prompts, ours[0]):
        ids = tok(prompt, return_tensors="pt")
        out = model.generate(**ids, do_sample=False, temperature=None, top_k=None, top_p=None, max_new_tokens=8,
                             eos_token_id=stop_token_ids(tok), pad_token_id=tok.pad_token_id)
        reference = tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)
        assert text == (reference.split("\n", 1)[0] + "\n" if "\n" in reference else reference)


def test_the_run_seed_draws_the_initial_weights(tiny_model):
    """SFT from the small model starts from weights drawn with the run seed; the builder's seed (0) gives back the
    stored ones, so the draw is the builder's own."""
    import torch

    from utils.modeling import load_model
    from utils.tiny_model import initial_weights

    stored = load_model(tiny_model, trainable=True)
    same = initial_weights(stored, 0)
    other = initial_weights(stored, 42)
    assert all(torch.equal(a, b) for a, b in zip(stored.state_dict().values(), same.state_dict().values()))
    assert not torch.equal(stored.model.embed_tokens.weight, other.model.embed_tokens.weight)
    assert other.lm_head.weight is other.model.embed_tokens.weight  # still tied
