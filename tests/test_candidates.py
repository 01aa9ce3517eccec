"""The candidate protocol (utils/candidates.py, eval/inference.py --decoding candidates, eval/evaluate.py): the draw,
the batched prefilled scores against one full forward pass per candidate, and the files it writes and evaluates."""
import json
import shutil

import numpy as np
import pytest

from utils.io import UserError
from utils.modeling import load_model, load_tokenizer
from utils.prompt import render_completion, render_prompt


@pytest.fixture(scope="module")
def sharp(tiny_model):
    """The small model with its output layer sharpened, so that scores differ well beyond rounding."""
    import torch

    torch.manual_seed(0)
    model = load_model(tiny_model)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(4)
    return model, load_tokenizer(tiny_model, padding_side="left")


def naive_scores(model, tok, prompt, names):
    """Each name's answer log-probability after the prompt, by one full forward pass of prompt + answer per name (no
    cache, no batch, no padding): the reference."""
    import torch

    from utils.prompt import completion_ids

    pid = tok(prompt).input_ids
    out = []
    with torch.no_grad():
        for seq in completion_ids(tok, names):
            logp = torch.log_softmax(model(torch.tensor([pid + list(seq)])).logits[0].float(), -1)
            out.append(sum(logp[len(pid) - 1 + j, t].item() for j, t in enumerate(seq)))
    return out


def test_the_draw_is_seeded_per_user_and_never_an_interacted_item(ml100k):
    from utils.candidates import draw_candidates
    from utils.data import interacted, load_catalog, load_split, user_items

    catalog, by_user = load_catalog(ml100k), user_items(ml100k)
    test = load_split(ml100k, "test")
    for r in test[:50]:
        rows = draw_candidates(r, catalog, by_user, seed=0)
        assert len(rows) == 20 == len(set(rows)) and catalog.index(r["target"]) in rows
        seen = {catalog.index(n) for n in interacted(r, by_user)} - {catalog.index(r["target"])}
        assert not seen & set(rows)  # none of the 19 is anything the user did
        assert draw_candidates(r, catalog, by_user, seed=0) == rows  # the same user, the same candidates
    # the user alone seeds the draw (not their place in the split); another seed, another draw
    assert draw_candidates(test[7], catalog, by_user, 0) == draw_candidates(dict(test[7]), catalog, {**by_user}, 0)
    assert draw_candidates(test[7], catalog, by_user, 0) != draw_candidates(test[7], catalog, by_user, 1)
    # shuffled: the target is not always first (ties in the scores keep this order)
    places = [draw_candidates(r, catalog, by_user, 0).index(catalog.index(r["target"])) for r in test[:200]]
    assert len(set(places)) > 10 and 5 < np.mean(places) < 14


def test_batched_prefilled_scores_equal_one_forward_pass_per_candidate(sharp, ml100k):
    """Prompts of different lengths in one batch (one much shorter), 20 candidates each, completions of different
    token lengths: every score equals the naive full forward pass to 1e-5, with and without the shared prefix, and
    with batches of one prompt."""
    from dataclasses import replace

    from utils.candidates import BATCHING, candidate_scores, draw_candidates
    from utils.data import load_catalog, load_split, user_items

    model, tok = sharp
    catalog, by_user = load_catalog(ml100k), user_items(ml100k)
    records = load_split(ml100k, "test")[:6]
    prompts = [render_prompt(r) for r in records]
    prompts[2] = prompts[2][:150] + "### Response:\n"
    names = [[catalog.names[i] for i in draw_candidates(r, catalog, by_user, 0)] for r in records]
    want = [naive_scores(model, tok, p, c) for p, c in zip(prompts, names)]
    for kwargs in ({}, {"share_prefix": False}, {"max_batch": 1}, {"token_budget": 2000}):
        got = candidate_scores(model, tok, prompts, names, batching=replace(BATCHING, progress=False, **kwargs))
        assert np.allclose(got, want, atol=1e-5, rtol=0), kwargs
    assert len({round(s, 3) for s in want[0]}) > 15  # the scores differ: the check is not of a constant


def test_a_model_that_knows_the_answer_ranks_it_first(sharp, ml100k):
    """The output layer biased towards one title's tokens: that title gets the best score among its candidates."""
    from dataclasses import replace

    import torch

    from utils.candidates import BATCHING, candidate_scores
    from utils.data import load_catalog
    from utils.prompt import completion_ids

    model, tok = sharp
    catalog = load_catalog(ml100k)
    names = catalog.names[100:120]
    favourite = names[13]
    ids = completion_ids(tok, [favourite])[0]
    bias = torch.zeros(model.config.vocab_size)
    bias[ids] = 30.0  # every token of the favourite's answer made far likelier than any other
    head = model.get_output_embeddings()
    saved = None if head.bias is None else head.bias.detach().clone()
    head.bias = torch.nn.Parameter(bias if saved is None else saved + bias)
    try:
        scores = candidate_scores(model, tok, [render_prompt(json.loads((ml100k / "test.json").read_text())[0])],
                                  [names], batching=replace(BATCHING, progress=False))[0]
    finally:
        head.bias = None if saved is None else torch.nn.Parameter(saved)
    assert int(np.argmax(scores)) == 13


def test_inference_and_evaluation_under_the_candidate_protocol(tiny_model, ml100k, tmp_path):
    from eval import evaluate, inference
    from utils.data import load_catalog

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    catalog = load_catalog(ml100k)
    with pytest.raises(UserError, match="--topk 25 is more than the 20 candidates"):
        inference.main(inference.Args(str(model_dir), category="ML100K", decoding="candidates", topk="1,25"))
    inference.main(inference.Args(str(model_dir), category="ML100K", test_sample_size=5, seed=1,
                                  decoding="candidates", evaluate=True, topk="1,5,20"))
    records = json.loads((model_dir / "test_result_candidates.json").read_text())
    users = [json.loads(x) for x in (model_dir / "eval_users_candidates.jsonl").read_text().splitlines()]
    assert len(records) == len(users) == 5 and not (model_dir / "test_result.json").exists()
    for r, u in zip(records, users):
        assert len(r["candidates"]) == 20 and r["target"] in r["candidates"]
        assert sorted(r["predict"]) == sorted(render_completion(c) for c in r["candidates"])
        assert r["logprobs"] == sorted(r["logprobs"], reverse=True)
        assert u["candidates"] == [catalog.index(c) for c in r["candidates"]]  # recorded in the per-user file
        assert u["topk"] == [catalog.index(p.strip('"\n')) for p in r["predict"]]  # all 20, ranked
        assert u["rank"] == u["topk"].index(u["target"])
        score = dict(zip(u["candidates"], u["logprobs"]))
        assert [score[i] for i in u["topk"]] == r["logprobs"]
    ranks = np.array([u["rank"] for u in users])
    for k in (1, 5, 20):
        row = json.loads((model_dir / f"eval_top{k}_candidates.json").read_text())
        assert row["decoding"] == "candidates" and row["ValidRatio"] == 1.0 and row["n"] == 5
        assert row["HR"] == pytest.approx(np.mean(ranks < k))
        assert row["NDCG"] == pytest.approx(np.mean((ranks < k) / np.log2(ranks + 2)))
    assert json.loads((model_dir / "eval_top20_candidates.json").read_text())["HR"] == 1.0  # the target is always in
    config = json.loads((model_dir / "run_config_inference_candidates.json").read_text())
    assert config["settings"]["candidates"] == 20 and config["settings"]["candidate_seed"] == 0
    with pytest.raises(UserError, match="candidate_seed 0 -> 3"):  # other candidates are another evaluation
        inference.main(inference.Args(str(model_dir), category="ML100K", test_sample_size=5, seed=1,
                                      decoding="candidates", topk="1,5,20", candidate_seed=3))
    # a tampered file is refused with the record it is in
    records[2]["candidates"] = records[2]["candidates"][1:] + [records[2]["candidates"][0]]
    records[2]["candidates"][-1] = "Not a movie"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(records))
    with pytest.raises(UserError, match="record 2 has a candidate that is not a catalog item"):
        evaluate.main(evaluate.Args(str(bad), category="ML100K", decoding="candidates", topk="1,5",
                                    output_dir=str(tmp_path / "out")))
    with pytest.raises(UserError, match="--decoding candidates"):  # never grounded as one text by mistake
        evaluate.main(evaluate.Args(str(model_dir / "test_result_candidates.json"), category="ML100K",
                                    embedding_model="stub", output_dir=str(tmp_path / "out")))


def test_mostpop_ranks_the_same_candidates_by_popularity(ml100k, tmp_path):
    from eval import mostpop
    from utils.candidates import draw_candidates
    from utils.data import load_catalog, load_split, sample_records, user_items
    from utils.metrics import TrainContext, popularity, read_eval_users, recomputed_metrics

    out = tmp_path / "MostPop"
    mostpop.main(mostpop.Args(str(out), category="ML100K", topk="1,5,20", test_sample_size=30, seed=3,
                              candidates=20))
    catalog, by_user = load_catalog(ml100k), user_items(ml100k)
    pop = popularity(load_split(ml100k, "train"), catalog)
    test = sample_records(load_split(ml100k, "test"), 30, 3)
    users = [json.loads(x) for x in (out / "eval_users_candidates.jsonl").read_text().splitlines()]
    for r, u in zip(test, users):
        assert u["candidates"] == draw_candidates(r, catalog, by_user, 0)  # what a model is ranked on, too
        assert [int(pop[i]) for i in u["topk"]] == sorted((int(pop[i]) for i in u["candidates"]), reverse=True)
        assert u["valid"] is None and u["text"] is None
    context = TrainContext.read(out / "eval_context.json")
    for k in (1, 5, 20):
        row = json.loads((out / f"eval_top{k}_candidates.json").read_text())
        assert row["model"] == "MostPop" and row["decoding"] == "candidates" and row["ValidRatio"] is None
        again = recomputed_metrics(read_eval_users(out / "eval_users_candidates.jsonl", k), k, context)
        assert all(row[key] == v for key, v in again.items())  # eval.recompute's check holds for it
    assert json.loads((out / "eval_top20_candidates.json").read_text())["HR"] == 1.0
