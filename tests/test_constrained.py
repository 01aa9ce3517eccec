"""Catalog-constrained beam search (utils/constrained.py) and its evaluation path."""
import json
import shutil

import pytest

from utils.generation import Batching
from utils.io import UserError
from utils.modeling import load_model, load_tokenizer
from utils.prompt import render_completion, render_prompt

# Titles that are prefixes of others, by characters and (in the first tokens) by tokens.
SIX = ["Alien (1979)", "Aliens (1986)", "Alien", "Heat (1995)", "Heat", "Fargo (1996)"]


@pytest.fixture(scope="module")
def sharp(tiny_model):
    """The small model with its output layer sharpened: random weights give near-uniform logits, and beams whose
    scores differ by rounding could swap between batched and one-by-one runs."""
    import torch

    torch.manual_seed(0)
    model = load_model(tiny_model)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(4)
    return model, load_tokenizer(tiny_model, padding_side="left")


@pytest.fixture(scope="module")
def prompts(ml100k):
    records = json.loads((ml100k / "test.json").read_text())[:10]
    out = [render_prompt(r) for r in records]
    out[3] = out[3][:200] + "### Response:\n"  # a much shorter prompt in the same batch
    return out


def _node(trie, prefix):
    """Follow token ids from the root (a Python walk: the reference the tensor lookups are checked against)."""
    node = 0
    for t in prefix:
        lo, hi = int(trie.child_ptr[node]), int(trie.child_ptr[node + 1])
        children = trie.child_tok[lo:hi].tolist()
        if t not in children:
            return None
        node = lo + children.index(t) + 1
    return node


def _brute_force(model, tok, prompt, sequences):
    """Each token sequence's log-probability after the prompt, by one full forward pass per sequence."""
    import torch

    pid = tok(prompt).input_ids
    out = []
    with torch.no_grad():
        for seq in sequences:
            logp = torch.log_softmax(model(torch.tensor([pid + list(seq)])).logits[0].float(), -1)
            out.append(sum(logp[len(pid) - 1 + j, t].item() for j, t in enumerate(seq)))
    return out


def test_the_mask_allows_exactly_the_catalog_continuations(sharp):
    import torch

    from utils.constrained import catalog_trie
    from utils.prompt import completion_ids

    _, tok = sharp
    trie = catalog_trie(tok, SIX)
    assert catalog_trie(tok, SIX) is trie  # built once per process
    seqs = completion_ids(tok, SIX)
    assert all(tok.decode(s) == render_completion(n) for s, n in zip(seqs, SIX))
    prefixes = sorted({tuple(s[:d]) for s in seqs for d in range(len(s))})
    nodes = torch.tensor([_node(trie, p) for p in prefixes])
    mask = trie.allowed_mask(nodes, len(tok))
    for p, row in zip(prefixes, mask):
        assert set(row.nonzero().squeeze(1).tolist()) == {s[len(p)] for s in seqs if tuple(s[:len(p)]) == p}
    for i, s in enumerate(seqs):  # an item ends where its tokens end, and nowhere else
        assert int(trie.item[_node(trie, s)]) == i
    assert int((trie.item >= 0).sum()) == len(SIX) and trie.depth == max(map(len, seqs))


def test_a_node_can_end_an_item_and_go_on():
    import torch

    from utils.constrained import SameTokens, build_trie

    trie = build_trie([[5, 7], [5, 7, 9], [3], [5, 8, 1]])
    node = _node(trie, [5, 7])
    assert int(trie.item[node]) == 0 and bool(trie.has_children(torch.tensor([node])))
    assert trie.allowed_mask(torch.tensor([0, node]), 10).nonzero().tolist() == [[0, 3], [0, 5], [1, 9]]
    with pytest.raises(SameTokens):
        build_trie([[1, 2], [3], [1, 2]])


def test_beams_are_the_exact_top_k_when_k_covers_the_catalog(sharp, prompts):
    """K >= items: nothing is pruned, so the beams are every item ranked by its brute-force log-probability; a
    smaller K gives distinct items in score order, each scored as brute force scores it."""
    from utils.constrained import beam_search
    from utils.prompt import completion_ids

    model, tok = sharp
    seqs = completion_ids(tok, SIX)
    full = beam_search(model, tok, prompts[2:4], SIX, k=8, batching=Batching(progress=False))
    small = beam_search(model, tok, prompts[2:4], SIX, k=3, batching=Batching(progress=False))
    for prompt, beams, top3 in zip(prompts[2:4], full, small):
        exact = _brute_force(model, tok, prompt, seqs)
        assert [i for i, _ in beams] == sorted(range(len(SIX)), key=lambda i: -exact[i])
        assert [s for _, s in beams] == pytest.approx([exact[i] for i, _ in beams], abs=1e-4)
        assert len({i for i, _ in top3}) == 3 and [s for _, s in top3] == sorted((s for _, s in top3), reverse=True)
        assert [s for _, s in top3] == pytest.approx([exact[i] for i, _ in top3], abs=1e-4)


def test_an_item_that_is_a_token_prefix_of_another(sharp, prompts):
    """Both the item that ends at an inner node and the longer one are found, scored by brute force."""
    import torch

    from utils.constrained import _search, build_trie
    from utils.generation import encode_prompts, left_pad

    model, tok = sharp
    seqs = [[10, 11], [10, 11, 12], [10, 13], [14], [10, 11, 12, 15]]
    enc, _ = encode_prompts(tok, prompts[:2])
    ids, mask = left_pad(enc, [0, 1], tok.pad_token_id)
    with torch.inference_mode():
        items, scores = _search(model, ids, mask, None, build_trie(seqs), 6)
    for row, prompt in enumerate(prompts[:2]):
        exact = _brute_force(model, tok, prompt, seqs)
        assert items[row, :5].tolist() == sorted(range(5), key=lambda i: -exact[i]) and items[row, 5] == -1
        assert scores[row, :5].tolist() == pytest.approx([exact[i] for i in items[row, :5].tolist()], abs=1e-4)


def test_batched_equals_unbatched(sharp, prompts, ml100k):
    from utils.constrained import beam_search
    from utils.data import load_catalog

    model, tok = sharp
    names = load_catalog(ml100k).names[:400]
    batched = beam_search(model, tok, prompts[:6], names, k=5, batching=Batching(2500, progress=False))
    single = [beam_search(model, tok, [p], names, k=5, batching=Batching(progress=False))[0] for p in prompts[:6]]
    for a, b in zip(batched, single):
        assert [i for i, _ in a] == [i for i, _ in b] and len({i for i, _ in a}) == 5
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)


def test_a_large_catalogs_trie_holds_every_item_in_linear_memory(sharp):
    """A 5,000-item catalog: every item in the tree, no more nodes than title tokens, memory linear in them. How long a
    build takes (50,000 items in seconds) is a benchmark, not a test: python -m bench.constrained --trie_items 50000."""
    import random

    from utils.constrained import build_trie
    from utils.prompt import completion_ids

    _, tok = sharp
    rng = random.Random(0)
    words = ["Night", "Love", "Story", "Return", "Dark", "Man", "City", "War", "Star", "Blue", "Last", "Dream"]
    names = [" ".join(rng.choices(words, k=rng.randint(1, 5))) + f" ({1920 + i % 100}) {i}" for i in range(5_000)]
    seqs = completion_ids(tok, names)
    trie = build_trie(seqs)
    total = sum(map(len, seqs))
    assert int((trie.item >= 0).sum()) == 5_000 and trie.n_nodes <= total + 1
    assert trie.nbytes <= 32 * (total + 1)  # linear in the titles' tokens


def test_inference_constrained_writes_k_catalog_items(tiny_model, ml100k, tmp_path):
    from eval import inference
    from utils.data import load_catalog

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    catalog = load_catalog(ml100k)
    with pytest.raises(UserError, match="--decoding must be one of greedy, constrained"):
        inference.main(inference.Args(str(model_dir), category="ML100K", decoding="beam"))
    inference.main(inference.Args(str(model_dir), category="ML100K", test_sample_size=4, seed=1, decoding="constrained",
                                  evaluate=True, topk="1,3"))
    records = json.loads((model_dir / "test_result_constrained.json").read_text())
    assert len(records) == 4 and not (model_dir / "test_result.json").exists()
    for r in records:
        items = [catalog.index(t.strip('"\n')) for t in r["predict"]]
        assert len(items) == 3 and None not in items and len(set(items)) == 3
        assert r["logprobs"] == sorted(r["logprobs"], reverse=True)
    for k in (1, 3):
        row = json.loads((model_dir / f"eval_top{k}_constrained.json").read_text())
        assert row["ValidRatio"] == 1.0 and row["decoding"] == "constrained" and row["embedding_model"] is None
        assert not (model_dir / f"eval_top{k}.json").exists()
    config = json.loads((model_dir / "run_config_inference_constrained.json").read_text())
    assert config["settings"]["decoding"] == "constrained" and config["settings"]["beams"] == 3
    with pytest.raises(UserError, match="beams 3 -> 5"):  # another K is another beam search
        inference.main(inference.Args(str(model_dir), category="ML100K", test_sample_size=4, seed=1,
                                      decoding="constrained", topk="1,5"))
    from eval import evaluate

    with pytest.raises(UserError, match="--decoding constrained"):  # never grounded as one text by mistake
        evaluate.main(evaluate.Args(str(model_dir / "test_result_constrained.json"), category="ML100K",
                                    embedding_model="stub"))


def test_constrained_evaluation_takes_the_ranking_as_the_top_k(ml100k, tmp_path):
    """HR/NDCG from the target's place in the ranking itself; bad rankings fail with one line."""
    import math

    from eval import evaluate
    from utils.data import load_catalog

    catalog = load_catalog(ml100k)
    by_target = {r["target"]: r for r in json.loads((ml100k / "test.json").read_text())
                 if catalog.index(r["target"]) is not None}
    records = list(by_target.values())[:4]  # four distinct targets
    others = [n for n in catalog.names if n not in {r["target"] for r in records}]
    for j, r in enumerate(records):  # the target at rank j (0-based); record 3 has it at rank 3
        ranking = others[5 * j:5 * j + 5]
        ranking.insert(j, r["target"])
        r["predict"], r["logprobs"] = [render_completion(t) for t in ranking[:5]], [-1.0] * 5
    path = tmp_path / "test_result_constrained.json"
    path.write_text(json.dumps(records))
    evaluate.main(evaluate.Args(str(path), category="ML100K", topk="1,5", decoding="constrained"))
    at1, at5 = (json.loads((tmp_path / f"eval_top{k}_constrained.json").read_text()) for k in (1, 5))
    assert at1["HR"] == 0.25 and at5["HR"] == 1.0 and at1["ValidRatio"] == at5["ValidRatio"] == 1.0
    assert at5["NDCG"] == pytest.approx(sum(1 / math.log2(j + 2) for j in range(4)) / 4)
    assert at5["diversity"] == 20
    for bad, message in ((lambda p: p[:3], "3 answers for top-5"), (lambda p: p[:4] + ['"Not a movie"\n'], "not a "
                         "catalog item"), (lambda p: p[:4] + p[:1], "the same item twice")):
        path.write_text(json.dumps([{**records[0], "predict": bad(records[0]["predict"])}]))
        with pytest.raises(UserError, match=message):
            evaluate.main(evaluate.Args(str(path), category="ML100K", topk="1,5", decoding="constrained"))


def test_self_play_draws_real_items_by_constrained_decoding(tiny_model, tmp_path):
    from train import self_play
    from utils.data import category_dir, load_catalog

    catalog = load_catalog(category_dir("ML100K"))
    self_play.main(self_play.Args(str(tmp_path / "data"), model_dir=str(tiny_model), category="ML100K",
                                  decoding="constrained", beams=3,
                                  recipe_args="self_play.train_sample_size=6 self_play.valid_sample_size=2"))
    pairs = [json.loads(x) for x in (tmp_path / "data/dpo_train.jsonl").read_text().splitlines()]
    assert len(pairs) == 6 and all(p["chosen"] != p["rejected"] for p in pairs)
    assert all(catalog.index(p["rejected_raw"]) is not None for p in pairs)
    summary = json.loads((tmp_path / "data/summary.json").read_text())
    assert summary["valid"] == summary["generated"]
    settings = json.loads((tmp_path / "data/run_config_self_play.json").read_text())["settings"]
    assert settings["decoding"] == "constrained" and settings["beams"] == 3
    with pytest.raises(UserError, match="deterministic beam search"):
        self_play.main(self_play.Args(str(tmp_path / "other"), model_dir=str(tiny_model), decoding="constrained",
                                      temperature=1.0))
