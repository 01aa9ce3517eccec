import json
import random

import pytest

from train import self_play
from utils.data import load_catalog, load_split
from utils.io import UserError
from utils.prompt import record_history, record_target, render_completion, render_prompt
from utils.seeds import stage_seed


def test_random_negatives_avoid_every_interaction_of_the_user(ml100k):
    """Not only the record's history and target: the user's items in other train windows and their valid and test
    targets too."""
    catalog = load_catalog(ml100k)
    by_user = self_play.user_items(ml100k)
    rng = random.Random(0)
    train = load_split(ml100k, "train")
    test_target = {r["user"]: record_target(r) for r in load_split(ml100k, "test")}
    for r in train[:300]:
        everything = by_user[r["user"]]
        assert test_target[r["user"]] in everything and {record_target(r), *record_history(r)} <= everything
        negs = self_play.random_negatives(self_play.interacted(r, by_user), catalog, rng, 3)
        assert len(set(negs)) == 3 and not set(negs) & everything
        assert all(catalog.index(n) is not None for n in negs)


def test_random_negatives_need_enough_free_items():
    class Catalog:
        names = ["a", "b", "c"]

        def __len__(self):
            return 3

        def index(self, name):
            return self.names.index(name) if name in self.names else None

    assert self_play.random_negatives({"a"}, Catalog(), random.Random(0), 2) in (["b", "c"], ["c", "b"])
    with pytest.raises(UserError, match="1 item\\(s\\) outside a user's interactions, fewer than the 2"):
        self_play.random_negatives({"a", "b"}, Catalog(), random.Random(0), 2)


def test_self_play_pairs(ml100k, tmp_path, monkeypatch):
    """The rejected side is the generated title as written; a prediction that grounds to the target (exactly, or a
    near-miss spelling) or is empty makes no pair and is counted; the spare draws fill the requested counts; the SFT
    step's records are the first N drawn; the same seed gives the same pairs."""
    import numpy as np

    train = load_split(ml100k, "train")
    catalog = load_catalog(ml100k)
    by_prompt = {render_prompt(r): r for r in train}
    calls, near_miss = [], {}

    def fake_generate(model, tokenizer, prompts, **kwargs):
        calls.append({**kwargs, "prompts": list(prompts)})
        out = []
        for j, p in enumerate(prompts):
            target = record_target(by_prompt[p])
            other = catalog.names[(catalog.index(target) + 1) % len(catalog)]
            if j % 11 == 0:  # a misspelling of the target: grounds to the target, so it is no negative
                near_miss[target.lower() + "!"] = catalog.index(target)
                out.append([render_completion(target.lower() + "!")])
            else:
                out.append([render_completion(target) if j % 5 == 0 else "" if j % 7 == 0 else f'"{other}"\n'])
        return out

    monkeypatch.setattr("utils.generation.generate_sharded", fake_generate)
    monkeypatch.setattr("utils.prompt.max_answer_tokens", lambda tok, names: 8)
    monkeypatch.setattr("utils.modeling.load_tokenizer", lambda *a, **k: None)
    monkeypatch.setattr("utils.modeling.load_model", lambda *a, **k: None)
    monkeypatch.setattr("utils.modeling.check_model_dir", lambda path, flag="": str(path))
    items = np.eye(len(catalog), dtype=np.float32)  # each item its own direction; a near miss embeds as its target
    monkeypatch.setattr("utils.grounding.item_embeddings", lambda catalog, model: items)
    monkeypatch.setattr("utils.grounding.embed_texts",
                        lambda texts, model: np.stack([items[near_miss.get(t, 0)] * (t in near_miss) for t in texts]))
    for name in ("a", "b"):
        self_play.main(self_play.Args(str(tmp_path / name), model_dir=str(tmp_path), category="ML100K", iteration=1,
                                      seed=3, spare_ratio=1.0,
                                      recipe_args="self_play.train_sample_size=40 self_play.valid_sample_size=10"))
    summary = json.loads((tmp_path / "a/summary.json").read_text())
    assert summary["drawn"] == 100 and summary["kept_train"] == 40 and summary["kept_valid"] == 10
    assert summary["dropped_equal"] >= 18 + 8 and summary["dropped_empty"] >= 10  # j % 5 (not % 11), j % 11
    assert summary["parsed"] == summary["generated"] - summary["dropped_empty"]
    pairs = [json.loads(x) for x in (tmp_path / "a/dpo_train.jsonl").read_text().splitlines()]
    assert all(p["chosen"] != p["rejected"] and p["rejected"] == render_completion(p["rejected_raw"]) for p in pairs)
    assert not any(p["rejected_raw"] == "" or p["rejected_raw"].endswith("!") for p in pairs)
    assert (tmp_path / "a/dpo_train.jsonl").read_text() == (tmp_path / "b/dpo_train.jsonl").read_text()
    sft = [json.loads(x) for x in (tmp_path / "a/sft_train.jsonl").read_text().splitlines()]
    assert [render_prompt(r) for r in sft] == calls[0]["prompts"][:40]  # the first 40 drawn
    assert calls[0]["sampling"].seed == stage_seed(3, "self_play", 1)  # the stage's seed, not the run's
    config = json.loads((tmp_path / "a/run_config_self_play.json").read_text())
    assert (config["args"]["seed"], config["settings"]["stage_seed"]) == (3, 32001)


def test_offline_negative_rows(ml100k, tmp_path, monkeypatch):
    """random with k = 3: one row per record, `rejected` plus two `extra_rejected`, none an item of the user;
    semantic: one row per record, the least similar item to the history by the (here stand-in) item embeddings."""
    import numpy as np

    catalog = load_catalog(ml100k)
    by_user = self_play.user_items(ml100k)
    self_play.main(self_play.Args(str(tmp_path / "random"), category="ML100K", negatives="random", num_negatives=3,
                                  recipe_args="self_play.train_sample_size=12 self_play.valid_sample_size=4"))
    rows = [json.loads(x) for x in (tmp_path / "random/dpo_train.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(len(p["extra_rejected"]) == 2 for p in rows)
    summary = json.loads((tmp_path / "random/summary.json").read_text())
    assert summary["kept_train"] == 12 and summary["kept_valid"] == 4 and summary["negatives_per_pair"] == 3
    train = load_split(ml100k, "train")
    by_prompt = {render_prompt(r): r for r in train}
    for p in rows:
        user = by_prompt[p["prompt"]]["user"]
        negs = [p["rejected"], *p["extra_rejected"]]
        assert len(set(negs)) == 3 and not {render_completion(x) for x in by_user[user]} & set(negs)

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(catalog), 8)).astype(np.float32)
    monkeypatch.setattr("utils.grounding.item_embeddings", lambda catalog, model: emb)
    monkeypatch.setattr("utils.grounding.default_embedding_model", lambda: "stand-in")
    self_play.main(self_play.Args(str(tmp_path / "semantic"), category="ML100K", negatives="semantic",
                                  recipe_args="self_play.train_sample_size=6 self_play.valid_sample_size=2"))
    rows = [json.loads(x) for x in (tmp_path / "semantic/dpo_train.jsonl").read_text().splitlines()]
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for p in rows:
        r = by_prompt[p["prompt"]]
        scores = unit @ unit[[catalog.index(h) for h in record_history(r)]].mean(0)
        scores[[catalog.index(x) for x in by_user[r["user"]]]] = np.inf
        assert p["rejected"] == render_completion(catalog.names[int(np.argmin(scores))]) and "extra_rejected" not in p


@pytest.mark.parametrize("contract, spare_ratio, drawn, recorded", [
    ("project", None, 18, {"spare_ratio": 0.1}),  # 16 pairs wanted, 10% more rounded up
    ("official", None, 516, {"spare_ratio": 0.0, "spare_prompts": 500}),  # the authors' N + V + 500
    ("official-schedule", None, 18, {"spare_ratio": 0.1}),  # an ablation of the schedule alone: the project's
    ("official", 0.5, 24, {"spare_ratio": 0.5}),  # --spare_ratio replaces the contract's spare
])
def test_the_spare_prompts_are_the_contracts(ml100k, tmp_path, contract, spare_ratio, drawn, recorded):
    """Self-play draws the pairs it needs plus the contract's spares, and the run config records them as settings
    (the project's as spare_ratio alone, so its run configs are the same whatever the spare's code)."""
    from utils.prompt import CONTRACTS

    assert CONTRACTS[contract].prompts_to_draw(16, spare_ratio) == drawn
    self_play.main(self_play.Args(str(tmp_path / "pairs"), category="ML100K", negatives="random",
                                  spare_ratio=spare_ratio, recipe_args=f"contract={contract} "
                                  "self_play.train_sample_size=12 self_play.valid_sample_size=4"))
    summary = json.loads((tmp_path / "pairs/summary.json").read_text())
    assert summary["drawn"] == drawn and summary["kept_train"] == 12 and summary["kept_valid"] == 4
    config = json.loads((tmp_path / "pairs/run_config_self_play.json").read_text())
    assert {k: v for k, v in config["args"].items() if k.startswith("spare")} == recorded
    assert {k: v for k, v in config["settings"].items() if k.startswith("spare")} == recorded


def test_grounded_rejected_items_and_record_only_exclusion(ml100k, monkeypatch):
    """The two self-play options the scripts leave at their defaults, tested so that they stay true: `--rejected
    grounded` puts the catalog item a prediction grounds to on the rejected side (`raw`, the default, keeps the
    generated text); `--exclude record` keeps offline negatives off the record's own items only (the default, `user`,
    off every item of its user)."""
    catalog = load_catalog(ml100k)
    drawn = load_split(ml100k, "train")[:20]
    prompts = [render_prompt(r) for r in drawn]
    other = [catalog.names[(catalog.index(record_target(r)) + 1) % len(catalog)] for r in drawn]
    outputs = [[render_completion(o.upper())] for o in other]  # a misspelling that grounds to `other`
    monkeypatch.setattr(self_play, "ground_to_catalog", lambda titles, catalog, model: [
        {o.upper(): o for o in other}[t] for t in titles])
    for rejected, expected in (("grounded", other), ("raw", [o.upper() for o in other])):
        pairs, counts = self_play.self_play_pairs(drawn, prompts, outputs, catalog, rejected, "", 1)
        assert [p["rejected"] for p in pairs] == [render_completion(x) for x in expected]
        assert [p["rejected_raw"] for p in pairs] == [o.upper() for o in other] and counts["valid"] == 0

    consulted = []
    monkeypatch.setattr(self_play, "user_items", lambda data_dir: consulted.append(data_dir) or {})
    for exclude, asked in (("record", []), ("user", [ml100k])):
        consulted.clear()
        rows = self_play.offline_pairs(self_play.Args("out", negatives="random", exclude=exclude), drawn, prompts,
                                       catalog, ml100k, random.Random(0), {})
        assert consulted == asked and len(rows) == len(drawn)
        for r, p in zip(drawn, rows):
            assert p["rejected_raw"] not in {record_target(r), *record_history(r)}
