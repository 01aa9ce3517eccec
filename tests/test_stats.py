"""eval/stats.py: paired differences and their bootstrap intervals, on hand-made models whose answers are known."""
import numpy as np
import pytest
from test_report import _toy_category, toy_predictions

from eval import stats


def model(topk, ranks, top_decile=(0,)):
    return {"topk": np.array(topk), "ranks": np.array(ranks), "top_decile": np.array(top_decile)}


def test_identical_models_differ_by_zero_within_noise():
    m = model([[0, 1], [2, 3], [0, 4]], [0, 2, 1])
    for metric, (d, lo, hi) in stats.paired_differences(m, m, resamples=200, k=2).items():
        assert (d, lo, hi) == (0, 0, 0), metric
        assert stats.verdict(lo, hi) == "within noise"


def test_every_hit_against_no_hit_is_certain():
    """HR@2 1 vs 0 on every user: the difference is 1 on every resample; the spread metrics are computed by hand."""
    a = model([[0, 1], [2, 3], [4, 5], [6, 7]], [0, 0, 1, 1])  # 8 distinct items, item 0 in the top decile once
    b = model([[0, 1], [0, 1], [0, 1], [0, 1]], [2, 2, 2, 2])  # the same 2 items for everyone
    d = stats.paired_differences(a, b, resamples=500, k=2)
    assert d["HR"] == (1.0, 1.0, 1.0)
    assert d["NDCG"][0] == pytest.approx((1 + 1 + 1 / np.log2(3) * 2) / 4)
    assert d["DivRatio"][0] == pytest.approx(8 / 8 - 2 / 8)
    assert d["ORRatio"][0] == pytest.approx(3 / 8 - 8 / 8)  # a: any 3 items once each; b: its 2 items, 4 times each
    assert d["TopDecile"][0] == pytest.approx(1 / 8 - 4 / 8)
    assert stats.verdict(*d["HR"][1:]) == "up" and stats.verdict(*d["ORRatio"][1:]) == "down"


def test_the_same_users_are_required():
    with pytest.raises(stats.UserError, match="the same test users"):
        stats.paired_differences(model([[0]], [0]), model([[0], [1]], [0, 0]), k=1)


def test_run_stats_on_a_toy_run(tmp_path, monkeypatch):
    """Two test users: SFT hits the first at rank 0, SPRec the second at rank 1; the bootstrap over 2 users spans
    both extremes (HR -1 when the first is drawn twice, +1 for the second), so the HR difference is within noise."""
    data_dir, rec = _toy_category(tmp_path, monkeypatch)
    root = tmp_path / "models"
    toy_predictions(root, rec, "it0")
    text, result = stats.run_stats([root], "Toy", str(data_dir), k=3, resamples=400, embedding_model="stub")
    d = result["per_root"][0][("SPRec", "SFT")]
    assert d["HR"] == (0.0, -1.0, 1.0)
    assert d["NDCG"][0] == pytest.approx(1 / np.log2(3) / 2 - 1 / 2)
    assert d["TopDecile"][0] == pytest.approx(0 - 2 / 6)  # SFT recommends Movie 9 (decile 1) twice in 6
    assert d["DivRatio"][0] == 0 and d["ORRatio"][0] == 0
    assert "| SPRec - SFT | +0.0000 [-1.0000, +1.0000] within noise |" in text


def test_across_seeds_is_the_t_interval_of_the_mean():
    mean, std, lo, hi = stats.across_seeds([1, 2, 3, 4, 5])
    half = 2.7764451 * np.sqrt(2.5) / np.sqrt(5)  # t(0.975, 4 df) * sample std / sqrt(n)
    assert (mean, std) == (3.0, pytest.approx(np.sqrt(2.5))) and (lo, hi) == (pytest.approx(3 - half),
                                                                            pytest.approx(3 + half))


def test_run_stats_over_seeds(tmp_path, monkeypatch):
    """The same toy run as two seeds: every per-seed difference is the same, so the spread is 0 and the interval a
    point; each seed's own bootstrap covers 0 for HR."""
    data_dir, rec = _toy_category(tmp_path, monkeypatch)
    roots = [tmp_path / "seed1", tmp_path / "seed2"]
    for root in roots:
        toy_predictions(root, rec, "it0")
    text, result = stats.run_stats(roots, "Toy", str(data_dir), k=3, resamples=400, embedding_model="stub")
    ndcg = 1 / np.log2(3) / 2 - 1 / 2
    assert f"| SPRec - SFT | +0.0000 ± 0.0000 [+0.0000, +0.0000] within noise (2/2 seeds within noise) | " \
           f"{ndcg:+.4f} ± 0.0000 [{ndcg:+.4f}, {ndcg:+.4f}] (" in text
