"""eval/learning_curve.py: each stage's records, and the curve read back from the stages' files."""
import json

import pytest

from eval.learning_curve import budget_slices, curve_table, markdown, parse_budgets, write_slices
from utils.io import UserError, write_json


def test_the_stages_train_on_disjoint_records_that_add_up_to_each_budget():
    records = [{"id": i} for i in range(100)]
    slices = budget_slices(records, [10, 30, 60], seed=7)
    assert [len(s) for s in slices.values()] == [10, 20, 30]
    seen = [r["id"] for s in slices.values() for r in s]
    assert len(set(seen)) == 60  # no record twice
    assert slices == budget_slices(records, [10, 30, 60], seed=7)  # seeded
    assert slices != budget_slices(records, [10, 30, 60], seed=8)
    with pytest.raises(UserError, match="budget 200 is more than the 100 train records"):
        budget_slices(records, [10, 200], seed=7)


@pytest.mark.parametrize("budgets", ["512,256", "0,10", "10,10", "a,b"])
def test_budgets_must_increase(budgets):
    with pytest.raises(UserError, match="--slices"):
        parse_budgets(budgets)


def test_a_rerun_keeps_the_records_and_refuses_other_ones(ml100k, tmp_path):
    write_slices(tmp_path, "ML100K", [8, 24], seed=1, data_dir=str(ml100k))
    first = (tmp_path / "slices" / "ML100K" / "records-24.jsonl").read_text()
    assert len(first.splitlines()) == 16
    write_slices(tmp_path, "ML100K", [8, 24], seed=1, data_dir=str(ml100k))  # the same draw: nothing to do
    with pytest.raises(UserError, match="records-8.jsonl holds other records"):
        write_slices(tmp_path, "ML100K", [8, 24], seed=2, data_dir=str(ml100k))


def stage(root, name, hr, texts, fingerprint="abc", loss=2.0):
    """A stage's files as evaluation writes them: the first user is a hit, the others are not; every other one names
    a catalog title."""
    d = root / name / "ML100K"
    write_json(d / "eval_top5.json", {"n": len(texts), "HR": hr, "NDCG": hr / 2, "DivRatio": 0.1, "ORRatio": 0.3,
                                      "ValidRatio": 0.5, "test_records": fingerprint})
    (d / "eval_users.jsonl").write_text("".join(json.dumps({
        "user": str(i), "target": 7, "target_decile": 0, "text": t, "rank": 0 if i == 0 else None,
        "topk": [7 if i == 0 else 1, 2, 3, 4, 5], "deciles": [0] * 5, "valid": i % 2 == 0}) + "\n"
        for i, t in enumerate(texts)))
    if name.startswith("SFT"):
        write_json(d / "run_config_sft.json", {"args": {"train_loss": loss, "train_seconds": 120.0,
                                                        "train_records": 8}})


def test_the_curve_reads_each_budget_and_mostpop_on_the_same_users(tmp_path):
    stage(tmp_path, "SFT-1024", 0.02, ['"B"\n', '"B"', '"C"', '"D"'])  # the same answer, with its newline or not
    stage(tmp_path, "SFT-512", 0.01, ['"A"', '"A"', '"A"', '"B"'])
    stage(tmp_path, "MostPop", 0.03, [None] * 4)
    rows, pop = curve_table(tmp_path, "ML100K")
    assert [b for b, _ in rows] == [512, 1024]  # numeric order, not the names'
    assert rows[0][1]["most_common"] == '"A"' and rows[0][1]["most_common_share"] == 0.75
    assert rows[1][1]["distinct_titles"] == 3 and pop["HR"] == 0.03
    assert rows[0][1]["hits@5"] == 1 and rows[0][1]["valid"] == 2
    table = markdown(rows, pop, "ML100K")
    assert "| 512 | 0.500 [0.150, 0.850] | 0.0100 [0.0456, 0.6994] (1) |" in table
    assert "| MostPop | – | 0.0300 [0.0000, 0.4899] (0) |" in table

    stage(tmp_path, "MostPop", 0.03, [None] * 4, fingerprint="other")
    with pytest.raises(UserError, match="MostPop/ML100K/eval_top5.json was evaluated on other test users"):
        curve_table(tmp_path, "ML100K")
    stage(tmp_path, "SFT-2048", 0.02, ['"B"'], fingerprint="other")
    with pytest.raises(UserError, match="evaluated on different test users"):
        curve_table(tmp_path, "ML100K")


def test_the_wilson_interval_matches_a_hand_computation():
    from eval.learning_curve import wilson

    low, high = wilson(4, 300)  # 4 hits of 300 users
    assert round(low, 4) == 0.0052 and round(high, 4) == 0.0338
    assert wilson(0, 300)[0] == 0.0 and wilson(300, 300)[1] == pytest.approx(1.0)

def test_no_stage_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no evaluated stage SFT-<budget>/ML100K"):
        curve_table(tmp_path, "ML100K")
