import json

from utils.modeling import load_model, load_tokenizer
from utils.prompt import render_completion, render_prompt
from utils.tiny_model import TINY_MARKER, is_small_model


def test_build_reload_generate(tiny_model, ml100k):
    from utils.generation import generate

    assert (tiny_model / "model.safetensors").is_file() and not list(tiny_model.glob("*.bin"))
    info = json.loads((tiny_model / TINY_MARKER).read_text())
    assert info["parameters"] > 0 and is_small_model(tiny_model)
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
