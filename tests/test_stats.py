"""eval/stats.py: paired differences, their intervals and tests, on hand-made models whose answers are known; and the
per-user files (eval_users.jsonl) giving the same statistics as re-grounding the predictions."""
import json

import numpy as np
import pytest
from test_report import _toy_category, toy_predictions

import utils.grounding as grounding
from eval import evaluate, stats
from utils.metrics import set_metrics


def model(topk, ranks, popular=None):
    """A model over len(topk) users; `popular`: (N, k) bools, by default item 0 is the one popular item."""
    topk = np.array(topk)
    return {"topk": topk, "ranks": np.array(ranks), "popular": topk == 0 if popular is None else np.array(popular)}


def random_model(rng, n: int, k: int, n_items: int, n_popular: int = 5):
    """n users' lists of k distinct items drawn uniformly from n_items; items below n_popular are the popular ones."""
    topk = np.array([rng.choice(n_items, k, replace=False) for _ in range(n)])
    return model(topk, rng.integers(0, k + 1, n), topk < n_popular)


def test_identical_models_differ_by_zero_within_noise():
    m = model([[0, 1], [2, 3], [0, 4]], [0, 2, 1])
    for metric, d in stats.paired_differences(m, m, resamples=200, k=2, swaps=200).items():
        assert d[:3] == (0, 0, 0), metric
        assert d.p in (None, 1.0) and stats.verdict(d) == "within noise"


def test_every_hit_against_no_hit_is_certain():
    """HR@2 1 vs 0 on every user: the difference is 1 on every resample; the list statistics are computed by hand."""
    a = model([[0, 1], [2, 3], [4, 5], [6, 7]], [0, 0, 1, 1])  # 8 distinct items, item 0 (popular) once
    b = model([[0, 1], [0, 1], [0, 1], [0, 1]], [2, 2, 2, 2])  # the same 2 items for everyone
    d = stats.paired_differences(a, b, resamples=500, k=2, swaps=500)
    assert d["HR"][:3] == (1.0, 1.0, 1.0)
    assert d["NDCG"].estimate == pytest.approx((1 + 1 + 1 / np.log2(3) * 2) / 4)
    assert d["DivRatio"].estimate == pytest.approx(8 / 8 - 2 / 8)
    assert d["ORRatio"].estimate == pytest.approx(3 / 8 - 8 / 8)  # a: any 3 items once each; b: its 2 items, 4 times
    assert d["TopDecile"].estimate == pytest.approx(1 / 8 - 4 / 8)
    # the bootstrap interval is the point 1, but 4 users cannot tell: a sign flip of all four reaches the observed
    # difference in 2 of 16 patterns, p about 1/8 (the verdict reads p, now that HR has one)
    assert d["HR"].p == pytest.approx(1 / 8, abs=0.05) and stats.verdict(d["HR"]) == "within noise"
    # Every one of the 16 swap patterns once: user 0's lists are the same in a and b; swapping m of users 1-3 gives a
    # 2 + 2(3 - m) distinct items and b 2 + 2m, so |difference| reaches the observed 6 when m is 0 or 3: 4 patterns,
    # p = (1 + 4) / (1 + 16). The same for ORRatio and TopDecile (each 2(3 - 2m) in counts, as it happens).
    patterns = np.array(np.meshgrid(*[[0, 1]] * 4)).reshape(4, -1).T.astype(np.float32)
    assert stats.randomisation_p(a, b, 2, patterns) == {m: 5 / 17 for m in stats.LIST_STATS}
    # HR and NDCG: every user's difference is positive, so only the 2 patterns that swap no user or every user reach
    # the observed sum: p = (1 + 2) / (1 + 16)
    assert stats.sign_flip_p(a, b, 2, patterns) == {"HR": 3 / 17, "NDCG": 3 / 17}


def test_the_same_users_are_required():
    with pytest.raises(stats.UserError, match="the same test users"):
        stats.paired_differences(model([[0]], [0]), model([[0], [1]], [0, 0]), k=1)


def test_jackknife_by_hand():
    """4 users, k = 2. a: [0,1] [0,2] [3,4] [0,1] (item 0 popular); b: [5,6] for everyone.
    DivRatio: a has 5 distinct items of 8, b 2: estimate 3/8. Without user 1..4, a keeps 5, 4, 3, 5 distinct items of
    6 and b 2, so the replicates are (3, 2, 1, 3)/6, their mean 9/4/6, and se^2 = 3/4 * (9 + 1 + 25 + 9)/16/36 = 11/192.
    ORRatio: a's 3 largest counts 3+2+1 of 8, b all 8: estimate -2/8; replicates (4-6, 5-6, 6-6, 4-6)/6, the same
    spread: se^2 = 11/192. TopDecile: a's users hold 1, 1, 0, 1 popular items, b none: estimate 3/8, replicates
    (2, 2, 3, 2)/6, se = 1/8: the usual standard error of a mean (per-user differences 1/2, 1/2, 0, 1/2: s/sqrt(4))."""
    a = model([[0, 1], [0, 2], [3, 4], [0, 1]], [0] * 4)
    b = model([[5, 6]] * 4, [0] * 4)
    full_a, del_a = stats.delete_one(a, 2)
    full_b, del_b = stats.delete_one(b, 2)
    assert (del_a["DivRatio"] - del_b["DivRatio"]).tolist() == pytest.approx([3 / 6, 2 / 6, 1 / 6, 3 / 6])
    assert (del_a["ORRatio"] - del_b["ORRatio"]).tolist() == pytest.approx([-2 / 6, -1 / 6, 0, -2 / 6])
    for metric, se in (("DivRatio", np.sqrt(11 / 192)), ("ORRatio", np.sqrt(11 / 192)), ("TopDecile", 1 / 8)):
        assert stats.jackknife_se(del_a[metric] - del_b[metric]) == pytest.approx(se), metric
    d = stats.paired_differences(a, b, k=2, swaps=100)
    half = 3.1824463 * np.sqrt(11 / 192)  # t(0.975, 3 df) * se
    assert d["DivRatio"][:3] == (pytest.approx(3 / 8), pytest.approx(3 / 8 - half), pytest.approx(3 / 8 + half))
    assert d["ORRatio"][:3] == (pytest.approx(-2 / 8), pytest.approx(-2 / 8 - half), pytest.approx(-2 / 8 + half))
    assert d["TopDecile"][:3] == (pytest.approx(3 / 8), pytest.approx(3 / 8 - 3.1824463 / 8),
                                  pytest.approx(3 / 8 + 3.1824463 / 8))


def test_the_bootstrap_misses_its_estimate_the_jackknife_does_not():
    """a recommends nearly distinct items to every user (DivRatio near 1), b draws from 30 items. A resample with
    replacement holds about 63% of the users, so a's distinct count, and the difference, fall on every resample: the
    with-replacement bootstrap interval lies wholly below the estimate. The jackknife's contains it."""
    rng = np.random.default_rng(0)
    a, b = random_model(rng, 60, 5, 2000), random_model(rng, 60, 5, 30)
    full = set_metrics(a["topk"], 2000)["DivRatio"] - set_metrics(b["topk"], 2000)["DivRatio"]
    samples = rng.integers(0, 60, size=(300, 60))
    boot = [set_metrics(a["topk"][s], 2000)["DivRatio"] - set_metrics(b["topk"][s], 2000)["DivRatio"] for s in samples]
    assert np.percentile(boot, 97.5) < full  # the bias
    d = stats.paired_differences(a, b, k=5)["DivRatio"]
    assert d.estimate == pytest.approx(full) and d.low < full < d.high
    assert 0 < d.high - d.low < 0.2 and d.p < 0.001


def test_randomisation_test_p_values():
    """Two models drawing from the same distribution: p is about uniform over 40 independent pairs (few below 0.05).
    A clear difference (a's items distinct and unpopular, b's one popular list for everyone): only the draws that
    swap no user or every user reach the observed difference, so p is its smallest value, 1/(1 + swaps)."""
    rng = np.random.default_rng(1)
    ps = np.array([[d.p for m, d in stats.paired_differences(random_model(rng, 100, 5, 600, 60),
                                                             random_model(rng, 100, 5, 600, 60), k=5,
                                                             swaps=500).items()
                    if m in stats.LIST_STATS] for _ in range(40)])
    assert (ps < 0.05).mean() < 0.1 and 0.4 < ps.mean() < 0.7
    a = model(np.arange(200).reshape(40, 5) + 10, [5] * 40)
    b = model([[0, 1, 2, 3, 4]] * 40, [5] * 40)
    d = stats.paired_differences(a, b, k=5, swaps=999)
    assert [d[m].p for m in stats.LIST_STATS] == [1 / 1000] * 3
    assert [stats.verdict(d[m]) for m in stats.LIST_STATS] == ["down", "up", "down"]


def test_run_stats_on_a_toy_run(tmp_path, monkeypatch):
    """Two test users: SFT hits the first at rank 0, SPRec the second at rank 1; the bootstrap over 2 users spans
    both extremes (HR -1 when the first is drawn twice, +1 for the second), so the HR difference is within noise.
    No eval_users.jsonl: the lists are re-grounded from test_result.json."""
    data_dir, rec = _toy_category(tmp_path, monkeypatch)
    root = tmp_path / "models"
    toy_predictions(root, rec, "it0")
    text, result = stats.run_stats([root], stats.Args(category="Toy", data_dir=str(data_dir), k=3, resamples=400,
                                                          embedding_model="stub"))
    d = result["per_root"][0][("SPRec", "SFT")]
    assert d["HR"] == (0.0, -1.0, 1.0, 1.0, 1.0)  # one pair: its Holm p is its p
    assert d["NDCG"].estimate == pytest.approx(1 / np.log2(3) / 2 - 1 / 2)
    assert d["TopDecile"].estimate == pytest.approx(0 - 2 / 6)  # SFT recommends Movie 9 (decile 1) twice in 6
    assert d["DivRatio"].estimate == 0 and d["ORRatio"].estimate == 0
    assert "| SPRec - SFT | +0.0000 [-1.0000, +1.0000] p=1 Holm p=1 within noise |" in text
    assert "Re-grounded from test_result.json (no eval_users.jsonl): SFT, SPRec." in text


def test_holm_by_hand():
    """m = 4: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, made non-decreasing (the last
    becomes 0.06), in the given order; capped at 1."""
    assert stats.holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm_adjusted([0.5, 0.6]) == [1.0, 1.0] and stats.holm_adjusted([0.2]) == [0.2]


def test_the_verdict_reads_the_holm_adjusted_p():
    """Three pairs whose raw p is 0.02, 0.03 and 0.5: each raw p of the first two says "up", Holm's (0.06, 0.06, 0.5)
    says within noise for all three."""
    d = {pair: {m: stats.Difference(0.1, 0.01, 0.2, p) for m in stats.METRICS}
         for pair, p in ((("A", "SFT"), 0.02), (("B", "SFT"), 0.03), (("C", "SFT"), 0.5))}
    assert [stats.verdict(d[pair]["HR"]) for pair in d] == ["up", "up", "within noise"]
    adjusted = stats.with_holm(d)
    assert [adjusted[pair]["HR"].p_holm for pair in d] == pytest.approx([0.06, 0.06, 0.5])
    assert [stats.verdict(adjusted[pair]["HR"]) for pair in d] == ["within noise"] * 3
    assert "+0.1000 [+0.0100, +0.2000] p=0.02 Holm p=0.06 within noise" == stats.cell(adjusted[("A", "SFT")]["HR"])


def test_the_paired_t_test_over_seeds():
    from scipy.stats import ttest_1samp

    d = [0.01, 0.03, -0.005, 0.02, 0.012]
    assert stats.seeds_t_test(d) == pytest.approx(ttest_1samp(d, 0.0).pvalue, abs=1e-12)
    _, _, lo, hi = stats.across_seeds(d)  # the t-interval excludes 0 exactly when the raw p is below 0.05
    assert (lo > 0) == (stats.seeds_t_test(d) < 0.05)
    assert stats.seeds_t_test([0.02, 0.02]) is None and stats.seeds_t_test([0.0, 0.0, 0.0]) is None


def test_across_seeds_is_the_t_interval_of_the_mean():
    mean, std, lo, hi = stats.across_seeds([1, 2, 3, 4, 5])
    half = 2.7764451 * np.sqrt(2.5) / np.sqrt(5)  # t(0.975, 4 df) * sample std / sqrt(n)
    assert (mean, std) == (3.0, pytest.approx(np.sqrt(2.5))) and (lo, hi) == (pytest.approx(3 - half),
                                                                            pytest.approx(3 + half))


def test_run_stats_over_seeds(tmp_path, monkeypatch):
    """The toy run as three seeds: seeds 1 and 2 the same models, seed 3's SPRec hitting the first user as well. Over
    seeds 1 and 2 every difference is the same: no spread, so the cell says so instead of a zero-width interval that
    would exclude 0. Over seeds 1 and 3 HR differs between the seeds and gets its t-interval."""
    data_dir, rec = _toy_category(tmp_path, monkeypatch)
    roots = [tmp_path / "seed1", tmp_path / "seed2", tmp_path / "seed3"]
    for root in roots:
        toy_predictions(root, rec, "it0")
    (roots[2] / "SPRec/Toy/it0/DPO/test_result.json").write_text(json.dumps(
        [rec("Movie 9", '"Movie 9"'), rec("Movie 0", '"Movie 1"'), rec("Not a movie", '"Movie 9"')]))
    text, _ = stats.run_stats(roots[:2], stats.Args(category="Toy", data_dir=str(data_dir), k=3, resamples=400,
                                                     embedding_model="stub"))
    ndcg = 1 / np.log2(3) / 2 - 1 / 2
    assert (f"| SPRec - SFT | +0.0000 identical in every seed (2/2 seeds within noise) | "
            f"{ndcg:+.4f} identical in every seed (") in text
    assert "± 0.0000" not in text and "- Identical in every seed: the difference is the same in each seed" in text
    text, _ = stats.run_stats(roots[::2], stats.Args(category="Toy", data_dir=str(data_dir), k=3, resamples=400,
                                                      embedding_model="stub"))
    mean, std, lo, hi = stats.across_seeds([0.0, 0.5])  # seed 3: SPRec hits both users, SFT the first
    assert f"| SPRec - SFT | {mean:+.4f} ± {std:.4f} [{lo:+.4f}, {hi:+.4f}] p=" in text


# ------------------------------------------------------------------------------- per-user files vs re-grounding
def line_run(tmp_path, monkeypatch, n_users: int = 24):
    """A 20-item category on a line (item i at x = i, so grounding is by |x - i|) with n_users test users, and three
    models' predictions: SFT concentrated on the popular items 0-2, DPO on 0-3 with an off-catalog title, SPRec
    spread out, with hits and off-catalog titles. Train targets: item i (i < 10) 10 - i times."""
    data = tmp_path / "data" / "Line"
    data.mkdir(parents=True)
    names = [f"Movie {i}" for i in range(20)]
    catalog = {"id2name.json": {str(i + 1): n for i, n in enumerate(names)},
               "name2id.json": {n: i + 1 for i, n in enumerate(names)},
               "name2genre.json": {n: ["Drama"] for n in names}, "genre_dict.json": {"Drama": 0}}
    for name, obj in catalog.items():
        (data / name).write_text(json.dumps(obj))

    def rec(user, target, predict=None):
        r = {"instruction": "i", "input": 'watched: "Movie 1"', "output": f'"{target}"\n', "target": target,
             "user": str(user)}
        return r if predict is None else r | {"predict": [predict]}

    (data / "train.json").write_text(json.dumps([rec(0, f"Movie {i}") for i in range(10) for _ in range(10 - i)]))
    targets = [f"Movie {7 * u % 20}" for u in range(n_users)] + ["Not a movie"]
    (data / "test.json").write_text(json.dumps([rec(u, t) for u, t in enumerate(targets)]))
    positions = {n: float(i) for i, n in enumerate(names)} | {"Movie 3.6": 3.6, "Somewhere": 11.3, "": 30.0}
    monkeypatch.setattr(grounding, "embed_texts", lambda texts, model_path, batch_size=256:
                        np.array([[positions[t], 0.0] for t in texts], dtype=np.float32))
    predictions = {
        "SFT": [f'"Movie {u % 3}"' for u in range(len(targets))],
        "DPO": [f'"Movie {u % 4}"' if u % 5 else '"Movie 3.6"' for u in range(len(targets))],
        "SPRec": [f'"{targets[u]}"' if u % 3 == 0 else "Somewhere" if u % 3 == 1 else f'"Movie {(u + 5) % 20}"'
                  for u in range(len(targets))]}
    root = tmp_path / "run"
    dirs = {"SFT": root / "SFT" / "Line", "DPO": root / "DPO" / "Line" / "it0" / "DPO",
            "SPRec": root / "SPRec" / "Line" / "it0" / "DPO"}
    for label, d in dirs.items():
        d.mkdir(parents=True)
        (d / "test_result.json").write_text(json.dumps([rec(u, t, p) for u, (t, p) in
                                                        enumerate(zip(targets, predictions[label]))]))
    return data, root, dirs


def test_per_user_files_give_the_statistics_of_regrounding(tmp_path, monkeypatch):
    """Evaluated at K = 1, 5 (eval_users.jsonl holds top-5 lists), compared at K = 3 and 5: every difference, interval
    and p-value is the same from the per-user files, with no dataset and no grounding, as from re-grounding."""
    data, root, dirs = line_run(tmp_path, monkeypatch)
    for d in dirs.values():
        evaluate.main(evaluate.Args(str(d / "test_result.json"), category="Line", data_dir=str(data), topk="1,5",
                                    embedding_model="stub"))
    files = {label: d / "eval_users.jsonl" for label, d in dirs.items()}
    first = json.loads(files["SPRec"].read_text().splitlines()[0])
    assert first == {"user": "0", "target": 0, "target_decile": 0, "rank": 0, "topk": [0, 1, 2, 3, 4],
                     "deciles": [0, 0, 1, 1, 2], "valid": True, "text": '"Movie 0"'}

    def no_grounding(*args, **kwargs):
        raise AssertionError("grounded although eval_users.jsonl is there")

    for k in (3, 5):
        moved = [f.rename(f.with_suffix(".bak")) for f in files.values()]
        text_re, regrounded = stats.run_stats([root], stats.Args(category="Line", data_dir=str(data), k=k,
                                                                 resamples=200, swaps=300, embedding_model="stub"))
        for f, back in zip(moved, files.values()):
            f.rename(back)
        with monkeypatch.context() as m:
            m.setattr(grounding, "ground_titles", no_grounding)
            text, from_files = stats.run_stats([root], stats.Args(category="Line", data_dir=str(tmp_path / "no data"),
                                                                  k=k, resamples=200, swaps=300))
        assert from_files["per_root"] == regrounded["per_root"] and len(from_files["pairs"]) == 3
        assert text_re == text + "- Re-grounded from test_result.json (no eval_users.jsonl): DPO, SFT, SPRec.\n"
        d = from_files["per_root"][0][("SPRec", "SFT")]
        assert d["DivRatio"].low < d["DivRatio"].estimate < d["DivRatio"].high and d["DivRatio"].p < 0.05


def test_constrained_lists_and_reference_rows(tmp_path, monkeypatch):
    """--decoding constrained reads eval_users_constrained.jsonl of the models that have one (DPO has none here, so it
    drops out); --references adds a reference row's one list for every protocol and compares each trained model with
    it, never the reference with SFT. Here MostPop's list is SFT's greedy one and the constrained lists are SFT's and
    SPRec's greedy ones swapped, so every difference is known from the greedy table."""
    data, root, dirs = line_run(tmp_path, monkeypatch)
    for d in dirs.values():
        evaluate.main(evaluate.Args(str(d / "test_result.json"), category="Line", data_dir=str(data), topk="1,5",
                                    embedding_model="stub"))
    (root / "MostPop" / "Line").mkdir(parents=True)
    (root / "MostPop" / "Line" / "eval_users.jsonl").write_bytes((dirs["SFT"] / "eval_users.jsonl").read_bytes())
    for a, b in (("SFT", "SPRec"), ("SPRec", "SFT")):
        (dirs[a] / "eval_users_constrained.jsonl").write_bytes((dirs[b] / "eval_users.jsonl").read_bytes())
    kw = dict(k=5, resamples=200, swaps=300)
    _, greedy = stats.run_stats([root], stats.Args(category="Line", **kw, references=("MostPop",)))
    assert greedy["pairs"] == [("SPRec", "SFT"), ("DPO", "SFT"), ("SPRec", "DPO"), ("SFT", "MostPop"),
                               ("SPRec", "MostPop"), ("DPO", "MostPop")]
    g = greedy["per_root"][0]
    assert all(g[("SFT", "MostPop")][m].estimate == 0 for m in stats.METRICS)
    assert all(g[("SPRec", "MostPop")][m].estimate == g[("SPRec", "SFT")][m].estimate for m in stats.METRICS)
    text, constrained = stats.run_stats([root], stats.Args(category="Line", **kw, decoding="constrained",
                                                                   references=("MostPop",)))
    assert constrained["pairs"] == [("SPRec", "SFT"), ("SFT", "MostPop"), ("SPRec", "MostPop")]
    c = constrained["per_root"][0]
    assert c[("SPRec", "SFT")]["HR"].estimate == pytest.approx(-g[("SPRec", "SFT")]["HR"].estimate)
    assert "first minus second, constrained decoding" in text
    with pytest.raises(stats.UserError, match="reference row SASRec"):
        stats.run_stats([root], stats.Args(category="Line", **kw, references=("SASRec",)))
    with pytest.raises(stats.UserError, match="greedy or constrained"):
        stats.run_stats([root], stats.Args(category="Line", **kw, decoding="candidates"))


def test_exposure_figure_from_per_user_files(tmp_path, monkeypatch):
    """The exposure figure's shares from eval_users.jsonl with no dataset equal those of re-grounding with it (every
    test user is evaluated here, so the test targets' shares agree too)."""
    from eval.figures import exposure_shares

    data, root, dirs = line_run(tmp_path, monkeypatch)
    for d in dirs.values():
        evaluate.main(evaluate.Args(str(d / "test_result.json"), category="Line", data_dir=str(data),
                                    embedding_model="stub"))
    files = exposure_shares([root], "Line", str(tmp_path / "no data"), k=5)
    for d in dirs.values():
        (d / "eval_users.jsonl").unlink()
    regrounded = exposure_shares([root], "Line", str(data), "stub", k=5)
    assert list(files[0]) == list(regrounded[0]) == ["SFT", "SPRec it0", "DPO it0"]
    for label, shares in files[0].items():
        assert shares.shape == (1, 10) and np.allclose(shares, regrounded[0][label]), label
    assert files[1].tolist() == pytest.approx(regrounded[1].tolist())
    assert files[0]["SFT"][0].tolist() == pytest.approx([.4, .4, .2] + [0] * 7)  # always items 0-4, 2 a decile


def test_p_values_print_with_four_decimals_and_never_as_zero():
    assert stats.format_p(0.0005) == "=0.0005" and stats.format_p(1.0) == "=1" and stats.format_p(0.04999) == "=0.05"
    assert stats.p_text(0.00004, 0.0002) == " p<0.0001 Holm p=0.0002"
