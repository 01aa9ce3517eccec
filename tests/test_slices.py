"""eval/slices.py: every metric per target-popularity decile and per user-activity third, from per-user files alone."""
import json

import numpy as np
import pytest

from eval import slices
from utils.metrics import TrainContext, read_eval_users, recomputed_metrics

# 20 items; item i is a train target 20 - i times (item 0 the most popular), so item i is in decile i // 2.
POPULARITY = np.arange(20, 0, -1)
# 12 users: user u's target is item u + 8 (deciles 4..9 in pairs), their train records 1..12 (thirds: 1-4, 5-8, 9-12)
USERS = [(str(u), u + 8) for u in range(12)]


def write_model(d, ranks):
    """A model whose user u ranks its target at ranks[u] (None: not in its top-5); the rest of the list is items
    0-4 (the popular ones), so TailShare and ARP differ between users with and without a hit."""
    d.mkdir(parents=True)
    lines = []
    for (user, target), rank in zip(USERS, ranks):
        top = [0, 1, 2, 3, 4]
        if rank is not None:
            top[rank] = target
        lines.append({"user": user, "target": target, "target_decile": target // 2, "rank": rank, "topk": top,
                      "deciles": [i // 2 for i in top], "valid": True, "text": "t"})
    (d / "eval_users.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    context = TrainContext(POPULARITY, {u: i + 1 for i, (u, _) in enumerate(USERS)})
    (d / "eval_context.json").write_text(json.dumps(context.to_json("Toy")))


def make_root(root, shift):
    write_model(root / "SFT" / "Toy", [0, None, None, 1, None, None, 2, None, None, None, 4, None])
    write_model(root / "SPRec" / "Toy" / "it0" / "DPO", [None, 0, 0, None, None, None, None, 3, None, shift, None, 0])
    return root


def test_slices_by_hand(tmp_path):
    roots = [make_root(tmp_path / "s1", None), make_root(tmp_path / "s2", 1)]
    out = slices.collect_slices(roots, "Toy", 5)
    assert list(out) == ["all users", "target decile", "user activity"]
    assert list(out["target decile"]) == [str(d) for d in range(1, 11)]
    # decile 5 (index 4): users 0 and 1 (targets 8, 9); SFT hits user 0 at rank 0: HR 1/2, MRR 1/2
    d5 = out["target decile"]["5"]
    assert d5["SFT"]["n"] == [2, 2] and d5["SFT"]["HR"] == [0.5, 0.5] and d5["SFT"]["MRR"] == [0.5, 0.5]
    assert d5["SPRec"]["HR"] == [0.5, 0.5]
    # decile 9 (index 8): users 8 and 9; SPRec hits user 9 only in the second root (rank 1): HR 0, then 1/2
    assert out["target decile"]["9"]["SPRec"]["HR"] == [0.0, 0.5]
    assert out["target decile"]["9"]["SPRec"]["NDCG"] == [0.0, pytest.approx(1 / np.log2(3) / 2)]
    # deciles 1-4 hold no target: no user, no metric
    assert out["target decile"]["1"]["SFT"]["n"] == [0, 0] and "HR" not in out["target decile"]["1"]["SFT"]
    # thirds by train records 1-4, 5-8, 9-12; each is recomputed_metrics on those users
    assert list(out["user activity"]) == ["fewest (1–4 train records)", "middle (5–8 train records)",
                                          "most (9–12 train records)"]
    users = read_eval_users(tmp_path / "s1" / "SFT" / "Toy" / "eval_users.jsonl", 5)
    middle = recomputed_metrics(slices.subset(users, np.arange(12) // 4 == 1), 5,
                                TrainContext.read(tmp_path / "s1" / "SFT" / "Toy" / "eval_context.json"))
    assert {k: v[0] for k, v in out["user activity"]["middle (5–8 train records)"]["SFT"].items()} == middle
    assert middle["n"] == 4 and middle["HR"] == 1 / 4  # users 4-7: SFT hits user 6 only (rank 2)


def test_activity_thirds_keep_ties_together():
    group, labels = slices.activity_groups(np.array([1, 1, 1, 1, 2, 9, 9, 30, 30]))
    assert group.tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2] and labels[0] == "fewest (1–1 train records)"


def test_cli_writes_tables_json_and_figure(tmp_path):
    roots = [make_root(tmp_path / "runs" / "s1", None), make_root(tmp_path / "runs" / "s2", 1)]
    slices.run(",".join(map(str, roots)), "Toy", 5, out=str(tmp_path / "out"), figs_dir=str(tmp_path / "figs"))
    text = (tmp_path / "out" / "Toy_slices.md").read_text()
    assert "| SPRec | – | – | – | – | 0.5000 ± 0.0000 |" in text  # HR@5 of decile 5 in both roots
    data = json.loads((tmp_path / "out" / "Toy_slices.json").read_text())
    assert data["k"] == 5 and data["slices"]["target decile"]["9"]["SPRec"]["HR"] == [0.0, 0.5]
    assert (tmp_path / "figs" / "Toy_hr_by_target_decile.png").read_bytes()[:4] == b"\x89PNG"
