import json

from utils.modeling import is_small_model, load_model, load_tokenizer
from utils.prompt import render_completion, render_prompt
from utils.tiny_model import TINY_MARKER


def test_build_reload_generate(tiny_model, ml100k):
    import torch

    from utils.generation import generate, stop_token_ids

    assert (tiny_model / "model.safetensors").is_file() and not list(tiny_model.glob("*.bin"))
    info = json.loads((tiny_model / TINY_MARKER).read_text())
    assert info["parameters"] > 0 and is_small_model(tiny_model)
    tok = load_tokenizer(tiny_model, padding_side="left")
    assert tok.pad_token and tok.eos_token and tok.pad_token_id != tok.eos_token_id
    model = load_model(tiny_model)
    again = load_model(tiny_model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    record = json.loads((ml100k / "test.json").read_text())[0]
    out = generate(model, tok, [render_prompt(record)], max_new_tokens=5, progress=False)
    # greedy: the answer is the argmax continuation, token by token, up to 5 tokens, ending at EOS or at a token
    # with a newline (utils.generation.stop_token_ids), and decoded without special tokens
    stops = set(stop_token_ids(tok))
    ids = tok(render_prompt(record), return_tensors="pt").input_ids
    expected = []
    with torch.no_grad():
        for _ in range(5):
            nxt = int(model(ids).logits[0, -1].argmax())
            expected.append(nxt)
            if nxt in stops:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    assert out == [[tok.decode(expected, skip_special_tokens=True)]]


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
