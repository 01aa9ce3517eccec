import json

from utils.generation import Batching
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
    out = generate(model, tok, [render_prompt(record)], max_new_tokens=5, batching=Batching(progress=False))
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


def test_the_official_contracts_small_model_reads_its_three_templates_alike(ml100k, tmp_path):
    """Under contract: official the small model's tokenizer is trained on the authors' three templates, with an indent
    as a token of its own: every evaluation-prompt line is tokenized as in the indented SFT text (a real model's
    vocabulary does the same), and the model lives in its own folder; the project's folder is untouched."""
    from utils.data import load_split
    from utils.prompt import OFFICIAL, PROJECT
    from utils.tiny_model import Args, build, tiny_model_dir

    out = tmp_path / "official"
    build(Args(category="ML100K", out=str(out), vocab_size=1024, hidden=64, layers=2, heads=2, corpus_records=300,
               recipe_args="contract=official"))
    assert json.loads((out / TINY_MARKER).read_text())["sft_texts"] == "official"
    tok = load_tokenizer(out)
    indent = tok.convert_ids_to_tokens(tok(" " * 16).input_ids)
    assert indent == ["\u0120" * 16]  # one token (byte-level: a space is \u0120)
    for record in load_split(ml100k, "test")[:20]:
        sft = tok.tokenize(OFFICIAL.sft_text(record))
        for line in OFFICIAL.generation_prompt(record).split("\n"):
            if line.strip():
                ids = tok.tokenize(line.rstrip())
                assert any(sft[i:i + len(ids)] == ids for i in range(len(sft))), line
    assert tiny_model_dir("ML100K", OFFICIAL).parent.name == "tiny-official"
    assert tiny_model_dir("ML100K", PROJECT).parent.name == "tiny"
