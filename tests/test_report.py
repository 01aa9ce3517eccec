"""eval/report.py on hand-made run roots: the table's rows, order and numbers, mean ± std over roots, missing methods,
the figures, and the popularity-decile shares behind the exposure figure."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import utils.grounding as grounding
from eval import figures, report
from utils.io import UserError

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"



KEYS = ("HR", "NDCG", "DivRatio", "ORRatio", "MGU", "DGU", "ValidRatio")


def write_eval(directory: Path, k: int, base: float, **overrides):
    """An eval file whose metric j is base + j/100 (HR = base, NDCG = base + .01, ...), unless overridden."""
    directory.mkdir(parents=True, exist_ok=True)
    row = {"model": str(directory), "category": "Toy", "topk": k, "n": 100, "n_skipped": 0, "diversity": 7}
    row |= {key: base + j / 100 for j, key in enumerate(KEYS)} | overrides
    row["embedding_model"] = "stub"
    (directory / f"eval_top{k}.json").write_text(json.dumps(row))


def write_model(directory: Path, base: float, **overrides):
    write_eval(directory, 1, base, **overrides)
    write_eval(directory, 5, base + 0.5, **overrides)


def full_root(root: Path, shift: float = 0.0) -> Path:
    """Every method; SPRec with iterations 0, 1 and 10 (numeric order), DPO with 0 and 1, the others with 0."""
    write_model(root / "MostPop" / "Toy", 0.01 + shift, ValidRatio=None)
    write_model(root / "SFT" / "Toy", 0.1 + shift)
    for it, b in ((10, 0.23), (0, 0.21), (1, 0.22)):
        write_model(root / "SPRec" / "Toy" / f"it{it}" / "SFT", b - 0.1 + shift)
        write_model(root / "SPRec" / "Toy" / f"it{it}" / "DPO", b + shift)
    for it in (1, 0):
        write_model(root / "DPO" / "Toy" / f"it{it}" / "DPO", 0.3 + it / 100 + shift)
    write_model(root / "SFT-only" / "Toy" / "it0" / "SFT", 0.4 + shift)
    for method, stages in (("DPO+SFT", ("SFT", "DPO")), ("S-DPO", ("DPO",)), ("DMPO", ("DPO",)),
                           ("SemanticDPO", ("DPO",)), ("GenreSFT", ("SFT",))):
        for stage in stages:
            write_model(root / method / "Toy" / "it0" / stage, 0.5 + shift)
    # ignored: an unfinished stage, a data directory, another category, an iteration directory with no stage
    write_model(root / "SPRec" / "Toy" / "it2" / "DPO.partial", 0.9)
    (root / "SPRec" / "Toy" / "it2" / "data").mkdir(parents=True)
    write_model(root / "SFT" / "Other", 0.9)
    return root


def table_rows(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_table_rows_order_and_numbers(tmp_path):
    root = full_root(tmp_path / "models")
    text, _, _, notes = report.build_report([root], "Toy")
    rows = table_rows(text)
    header = rows[0]
    assert header[0] == "Method"
    assert header[1:8] == ["HR@1 ↑", "NDCG@1 ↑", "DivRatio@1 ↑", "ORRatio@1 ↓", "MGU@1 ↓", "DGU@1 ↓", "ValidRatio@1 ↑"]
    assert header[8] == "HR@5 ↑" and header[11] == "ORRatio@5 ↓" and len(header) == 15
    labels = [r[0] for r in rows[2:]]
    assert labels == ["MostPop", "SFT", "SPRec it0 SFT", "SPRec it0 DPO", "SPRec it1 SFT", "SPRec it1 DPO",
                      "SPRec it10 SFT", "SPRec it10 DPO", "DPO it0", "DPO it1", "DPO+SFT it0 SFT", "DPO+SFT it0 DPO",
                      "S-DPO it0", "DMPO it0", "SemanticDPO it0", "GenreSFT it0", "SFT-only it0"]
    by_label = {r[0]: r[1:] for r in rows[2:]}
    # SFT: K=1 base .1 -> HR .1000, NDCG .1100, ..., ValidRatio .1600; K=5 base .6
    assert by_label["SFT"] == ["0.1000", "0.1100", "0.1200", "0.1300", "0.1400", "0.1500", "0.1600",
                               "0.6000", "0.6100", "0.6200", "0.6300", "0.6400", "0.6500", "0.6600"]
    assert by_label["SPRec it1 DPO"][0] == "0.2200" and by_label["SPRec it1 SFT"][0] == "0.1200"
    assert by_label["DPO it1"][7] == "0.8100"
    assert by_label["MostPop"][6] == "–" and by_label["MostPop"][13] == "–"  # ValidRatio null
    assert not any("skipped" in n for n in notes)
    assert "n = 100 evaluated test records in every row" in text


def test_constrained_rows_beside_their_greedy_rows(tmp_path):
    """Constrained-decoding eval files never enter the main (greedy) table; they get their own, paired rows."""
    root = full_root(tmp_path / "models")
    plain = report.build_report([root], "Toy")[0]
    for d, base in ((root / "SFT" / "Toy", 0.7), (root / "SPRec" / "Toy" / "it1" / "DPO", 0.8)):
        for k, b in ((1, base), (5, base + 0.05)):
            row = {"topk": k, "n": 100, **{key: b for key in KEYS}, "ValidRatio": 1.0, "decoding": "constrained"}
            (d / f"eval_top{k}_constrained.json").write_text(json.dumps(row))
    text, rows, _, _ = report.build_report([root], "Toy")
    main, extra = text.split("### Toy: greedy against catalog-constrained decoding")
    assert plain.strip() == main.strip()
    labels = {r[0]: r[1:] for r in table_rows(extra)[2:]}
    assert list(labels) == ["SFT, greedy", "SFT, constrained", "SPRec it1 DPO, greedy", "SPRec it1 DPO, constrained"]
    assert labels["SFT, constrained"][0] == "0.7000" and labels["SFT, constrained"][6] == "1.0000"
    assert labels["SFT, greedy"] == table_rows(main)[3][1:]


def test_candidate_protocol_table(tmp_path):
    """Candidate-protocol eval files get their own table, at the Ks all of them have; the main table ignores them."""
    root = full_root(tmp_path / "models")
    plain = report.build_report([root], "Toy")[0]
    for d, base in ((root / "MostPop" / "Toy", 0.1), (root / "SFT" / "Toy", 0.3)):
        for k in (1, 5, 20):
            row = {"topk": k, "n": 100, "HR": base + k / 100, "NDCG": base + k / 200, "decoding": "candidates"}
            (d / f"eval_top{k}_candidates.json").write_text(json.dumps(row))
    (root / "SFT" / "Toy" / "eval_top10_candidates.json").write_text(json.dumps({"topk": 10, "HR": 0.5}))
    text = report.build_report([root], "Toy")[0]
    main, extra = text.split("### Toy: the candidate protocol")
    assert plain.strip() == main.strip()
    rows = table_rows(extra)
    assert rows[0] == ["Method", "HR@1 ↑", "NDCG@1 ↑", "HR@5 ↑", "NDCG@5 ↑", "HR@20 ↑", "NDCG@20 ↑"]  # no K=10
    assert rows[2:] == [["MostPop", "0.1100", "0.1050", "0.1500", "0.1250", "0.3000", "0.2000"],
                        ["SFT", "0.3100", "0.3050", "0.3500", "0.3250", "0.5000", "0.4000"]]


def test_beyond_accuracy_table_at_the_largest_k(tmp_path):
    """The beyond-accuracy metrics get their own table at K=5, for the rows whose eval files hold them."""
    root = full_root(tmp_path / "models")
    plain = report.build_report([root], "Toy")[0]
    assert "Beyond accuracy" not in plain  # no eval file holds them: no table
    beyond = {"MRR": 0.05, "Coverage": 0.1, "Gini": 0.97, "Entropy": 4.1, "ARP": 32.5, "TailShare": 0.48,
              "HR_head": 0.04, "HR_mid": 0.004, "HR_tail": None, "PopREO": 1.09}
    write_eval(root / "SFT" / "Toy", 5, 0.6, **beyond)
    text = report.build_report([root], "Toy")[0]
    main, extra = text.split("### Beyond accuracy at K=5")
    assert table_rows(main) == table_rows(plain)  # the main table is untouched
    rows = table_rows(extra.split("### Training budget")[0])
    assert rows[0] == ["Method", "MRR@5 ↑", "Coverage@5 ↑", "Gini@5 ↓", "Entropy@5 ↑", "ARP@5 ↓", "TailShare@5 ↑",
                       "HR_head@5 ↑", "HR_mid@5 ↑", "HR_tail@5 ↑", "PopREO@5 ↓"]
    assert rows[2:] == [["SFT", "0.0500", "0.1000", "0.9700", "4.1000", "32.5000", "0.4800", "0.0400", "0.0040",
                         "–", "1.0900"]]
    assert "- no beyond-accuracy metrics (no per-user file) for: MostPop, SPRec it0 SFT" in extra


def test_training_budget_from_the_run_configs(tmp_path):
    root = full_root(tmp_path / "models")

    def config(d, stage, seconds=None, **args):
        d.mkdir(parents=True, exist_ok=True)
        (d / f"run_config_{stage}.json").write_text(json.dumps({"stage": stage, "args": args,
                                                                 "process_seconds": seconds}))

    config(root / "SFT/Toy", "sft", 31.2, steps=500, train_records=8000, warmup_steps_effective=20,
           train_seconds=20.4)
    config(root / "SFT/Toy", "inference", 9.6)
    config(root / "S-DPO/Toy/it0/DPO", "dpo", steps=64, pairs=512, negatives_per_pair=3)
    config(root / "DPO/Toy/it0/DPO", "dpo", 12, steps=64, pairs=512)  # written before the count was recorded: 1
    config(root / "DPO/Toy/it0/data", "self_play", 5.4)
    config(root / "GenreSFT/Toy/it0/SFT", "sft", steps=32, train_records=512, record_weight_mean=1.02)
    text, *_ = report.build_report([root], "Toy")
    budget = text[text.index("### Training budget"):text.index("### Time per iteration")]
    rows = {r[0]: r[1:] for r in table_rows(budget)[2:]}
    assert rows == {"SFT": ["SFT", "500", "8000", "–", "–", "20", "20", "31", "10"],
                    "DPO it0": ["DPO", "64", "–", "512", "1", "–", "–", "12", "–"],
                    "S-DPO it0": ["DPO", "64", "–", "512", "3", "–", "–", "–", "–"],
                    "GenreSFT it0": ["SFT, genre re-weighted", "32", "512", "–", "–", "–", "–", "–", "–"]}
    # an iteration's time: every stage process under it<i>/, only where each one recorded it
    times = {r[0]: r[1:] for r in table_rows(text[text.index("### Time per iteration"):])[2:]}
    assert times == {"DPO it0": ["2", "17"]}


def test_what_each_model_answers_from_the_per_user_lists(tmp_path):
    root = full_root(tmp_path / "models")

    def users(d, texts):
        (d / "eval_users.jsonl").write_text("".join(json.dumps({"user": str(i), "target": 0, "target_decile": 0,
                                                                "rank": None, "topk": [1], "deciles": [0], "text": t,
                                                                "valid": None if t is None else True})
                                                    + "\n" for i, t in enumerate(texts)))

    users(root / "SFT/Toy", ['"Fargo (1996)"\n', '"Fargo (1996)"', '"Heat | `Cut` (1995)"\n', '"Heat (1995)"\n'])
    users(root / "DPO/Toy/it1/DPO", ['"Heat | `Cut` (1995)"\n'])
    users(root / "MostPop/Toy", [None, None])  # no answers: no row
    text, *_ = report.build_report([root], "Toy")
    assert "### What each model answers\n" in text
    section = text[text.index("### What each model answers"):]
    # the answer line without its newline: SFT's first two are one answer
    assert table_rows(section)[2] == ["SFT", "4", "3", '`"Fargo (1996)"`', "0.50"]
    # a '|' is escaped and backticks become quotes, so the cell stays one cell of code
    assert "| DPO it1 | 1 | 1 | `\"Heat \\| 'Cut' (1995)\"` | 1.00 |" in section.splitlines()
    assert "(of " in report.build_report([root, full_root(tmp_path / "seed2")], "Toy")[0].split(
        "### What each model answers")[1].splitlines()[0]
    # a line that is not a record: the file and line named
    (root / "SFT/Toy/eval_users.jsonl").write_text((root / "SFT/Toy/eval_users.jsonl").read_text().splitlines()[0]
                                                   + '\n[1, 2]\n')
    with pytest.raises(UserError, match=r"SFT/Toy/eval_users.jsonl, line 2: not a JSON object"):
        report.build_report([root], "Toy")
    # without per-user lists, no section
    for d in ("SFT/Toy", "DPO/Toy/it1/DPO"):
        (root / d / "eval_users.jsonl").unlink()
    assert "### What each model answers" not in report.build_report([root], "Toy")[0]


def test_rounding_to_four_decimals(tmp_path):
    root = tmp_path / "r"
    write_model(root / "SFT" / "Toy", 0.1, HR=0.123456, NDCG=2 / 3)
    text, *_ = report.build_report([root], "Toy")
    sft = table_rows(text)[2]
    assert sft[1] == "0.1235" and sft[2] == "0.6667"


def test_missing_methods_are_skipped(tmp_path):
    root = tmp_path / "r"
    write_model(root / "SFT" / "Toy", 0.1)
    write_model(root / "SPRec" / "Toy" / "it0" / "DPO", 0.2)  # no SFT stage evaluated in this iteration
    write_eval(root / "SPRec" / "Toy" / "it0" / "SFT", 1, 0.15)  # only K=1 written
    text, rows, _, notes = report.build_report([root], "Toy")
    labels = [r[0] for r in table_rows(text)[2:]]
    assert labels == ["SFT", "SPRec it0 SFT", "SPRec it0 DPO"]
    assert table_rows(text)[3][8:] == ["–"] * 7  # the missing K=5 file
    joined = "\n".join(notes)
    for what in ("MostPop", "DPO", "SFT-only"):
        assert f"no {what} (nothing evaluated under {what}/Toy)" in joined
    assert "SPRec has one iteration only" in joined
    png = figures.plot_metrics_per_iteration(rows, 1, "Toy", tmp_path / "figs" / "a.png")
    assert png.read_bytes().startswith(PNG)


def test_no_eval_files_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no eval_top"):
        report.build_report([tmp_path / "empty"], "Toy")


def test_mean_and_std_over_two_roots(tmp_path):
    a = full_root(tmp_path / "seed1")
    b = full_root(tmp_path / "seed2", shift=0.2)
    write_model(a / "SFT-only" / "Toy" / "it1" / "SFT", 0.5)  # only in one root: left out
    text, rows, _, notes = report.build_report([a, b], "Toy")
    by_label = {r[0]: r[1:] for r in table_rows(text)[2:]}
    assert "SFT-only it1" not in by_label and "SFT-only it0" in by_label
    assert any("SFT-only it1" in n for n in notes)
    # SFT HR@1: 0.1 and 0.3 -> mean 0.2, sample std sqrt(((-.1)^2 + .1^2) / 1) = 0.141421...
    assert by_label["SFT"][0] == "0.2000 ± 0.1414"
    # SPRec it0 DPO HR@5: 0.71 and 0.91 -> 0.81 ± 0.1414
    assert by_label["SPRec it0 DPO"][7] == "0.8100 ± 0.1414"
    assert by_label["MostPop"][6] == "–"
    mean, std = report.mean_std([0.1, 0.2, 0.6])
    assert mean == pytest.approx(0.3) and std == pytest.approx(math.sqrt((0.04 + 0.01 + 0.09) / 2))
    assert report.mean_std([0.4, math.nan])[0] == pytest.approx(0.4)
    png = figures.plot_metrics_per_iteration(rows, 2, "Toy", tmp_path / "figs" / "a.png")
    assert png.stat().st_size > 1000 and png.read_bytes().startswith(PNG)


def test_cli_writes_table_and_figure(tmp_path, capsys):
    root = full_root(tmp_path / "models")
    figs = tmp_path / "figs"
    report.run(run_root=str(root), category="Toy", figs_dir=str(figs), exposure=False)
    out = capsys.readouterr().out
    written = (root / "Toy_results.md").read_text(encoding="utf-8")
    assert "| SPRec it0 DPO |" in out and written in out
    png = figs / "Toy_metrics_per_iteration.png"
    assert png.stat().st_size > 1000 and png.read_bytes().startswith(PNG)
    # several roots, as fire passes `a,b` (a tuple) or `/x/a,/x/b` (a string)
    other = full_root(tmp_path / "models2", shift=0.1)
    for arg in ((str(root), str(other)), f"{root},{other}"):
        report.run(run_root=arg, category="Toy", figs_dir="", out=str(tmp_path / "mean.md"))
        assert "± 0.0707" in (tmp_path / "mean.md").read_text(encoding="utf-8")
    report.run(run_root=f"{root},{other}", category="Toy", figs_dir="")
    assert (tmp_path / "Toy_results_mean.md").is_file()
    with pytest.raises(UserError, match="does not exist"):
        report.run(run_root=str(tmp_path / "nope"), category="Toy")


# ------------------------------------------------------------------------------------------------ exposure
def test_item_deciles_and_shares():
    # 20 items -> 2 per decile. Popularity sorted descending, ties by the smaller row:
    # row 3 (9), row 0 (5), row 7 (5), row 1 (4), row 12 (2), then the 15 zeros in row order 2, 4, 5, 6, 8, ...
    pop = np.zeros(20, dtype=int)
    pop[[3, 0, 7, 1, 12]] = [9, 5, 5, 4, 2]
    bins = figures.item_deciles(pop)
    assert bins[3] == 0 and bins[0] == 0 and bins[7] == 1 and bins[1] == 1 and bins[12] == 2 and bins[2] == 2
    assert bins[4] == 3 and bins[5] == 3 and bins[19] == 9 and bins[18] == 9 and bins[17] == 8
    assert np.bincount(bins).tolist() == [2] * 10
    # two records' top-3: rows 3, 0, 7 | 1, 19, 3 -> bins 0, 0, 1 | 1, 9, 0
    shares = figures.decile_shares(pop, np.array([[3, 0, 7], [1, 19, 3]]))
    assert shares.tolist() == pytest.approx([3 / 6, 2 / 6, 0, 0, 0, 0, 0, 0, 0, 1 / 6])
    assert figures.decile_shares(pop, []).tolist() == [0.0] * 10
    # fewer items than bins: each item its own bin, the rest stay empty
    assert figures.item_deciles(np.array([1, 3, 2])).tolist() == [6, 0, 3]


NAMES = [f"Movie {i}" for i in range(10)]  # item id i + 1 at row i; "embedding" of Movie i is (i, 0)


def _toy_category(tmp_path, monkeypatch):
    d = tmp_path / "data" / "Toy"
    d.mkdir(parents=True)
    catalog = {"id2name.json": {str(i + 1): n for i, n in enumerate(NAMES)},
               "name2id.json": {n: i + 1 for i, n in enumerate(NAMES)},
               "name2genre.json": {n: ["Drama"] for n in NAMES}, "genre_dict.json": {"Drama": 0}}
    for name, obj in catalog.items():
        (d / name).write_text(json.dumps(obj))

    def rec(target, predict=None):
        r = {"instruction": "i", "input": 'watched: "Movie 9"', "output": f'"{target}"\n', "target": target}
        return r if predict is None else r | {"predict": [predict]}

    # train popularity: Movie 9 x3, Movie 8 x2, Movie 0 x1 -> deciles (1 item each): 9, 8, 0, 1, 2, ..., 7
    (d / "train.json").write_text(json.dumps([rec(t) for t in ["Movie 9"] * 3 + ["Movie 8"] * 2 + ["Movie 0"]]))
    (d / "valid.json").write_text(json.dumps([rec("Movie 1")]))
    (d / "test.json").write_text(json.dumps([rec("Movie 9"), rec("Movie 0"), rec("Not a movie")]))
    positions = {n: float(i) for i, n in enumerate(NAMES)} | {"Movie 8.4": 8.4}
    monkeypatch.setattr(grounding, "embed_texts",
                        lambda texts, model_path, batch_size=256: np.array([[positions[t], 0.0] for t in texts],
                                                                           dtype=np.float32))
    return d, rec


def toy_predictions(root, rec, iteration: str):
    """SFT and SPRec model directories of the toy category with test predictions. SFT: "Movie 9" exactly (rows 9, 8,
    7), an unknown title at 8.4 (rows 8, 9, 7); SPRec: "Movie 0" and "Movie 1"; the third record is skipped."""
    sft, sprec = root / "SFT" / "Toy", root / "SPRec" / "Toy" / iteration / "DPO"
    for d in (sft, sprec):
        d.mkdir(parents=True)
        write_model(d, 0.1)
    (sft / "test_result.json").write_text(json.dumps([rec("Movie 9", '"Movie 9"'), rec("Movie 0", '"Movie 8.4"'),
                                                      rec("Not a movie", '"Movie 0"')]))
    (sprec / "test_result.json").write_text(json.dumps([rec("Movie 9", '"Movie 0"'), rec("Movie 0", '"Movie 1"'),
                                                        rec("Not a movie", '"Movie 9"')]))
    return sft, sprec


def test_top_items_and_exposure_figure(tmp_path, monkeypatch):
    data_dir, rec = _toy_category(tmp_path, monkeypatch)
    from utils.data import load_catalog

    catalog = load_catalog(data_dir)
    root = tmp_path / "models"
    sft, sprec = toy_predictions(root, rec, "it1")
    (root / "SPRec" / "Toy" / "it0" / "DPO").mkdir(parents=True)
    write_model(root / "SPRec" / "Toy" / "it0" / "DPO", 0.1)
    assert figures.top_items(sft / "test_result.json", catalog, 3, "stub").tolist() == [[9, 8, 7], [8, 9, 7]]
    # SPRec: Movie 0 -> rows 0, 1, 2; Movie 1 -> rows 1, 0, 2 (0 and 2 tie at distance 1: the smaller row first)
    assert figures.top_items(sprec / "test_result.json", catalog, 3, "stub").tolist() == [[0, 1, 2], [1, 0, 2]]

    shares, target_shares, notes = figures.exposure_shares([root], "Toy", data_dir, "stub", k=3)
    assert list(shares) == ["SFT", "SPRec it1"]  # it0 has no predictions: the last with them is it1
    # deciles: Movie 9 -> 0, Movie 8 -> 1, Movie 0 -> 2, Movie 1 -> 3, Movie 2 -> 4, ..., Movie 7 -> 9
    assert shares["SFT"][0].tolist() == pytest.approx([2 / 6, 2 / 6, 0, 0, 0, 0, 0, 0, 0, 2 / 6])
    assert shares["SPRec it1"][0].tolist() == pytest.approx([0, 0, 2 / 6, 2 / 6, 2 / 6, 0, 0, 0, 0, 0])
    assert target_shares.tolist() == pytest.approx([0.5, 0, 0.5, 0, 0, 0, 0, 0, 0, 0])
    assert any("no DPO predictions" in n for n in notes)
    png = figures.plot_exposure(shares, target_shares, "Toy", tmp_path / "figs" / "b.png", k=3)
    assert png.stat().st_size > 1000 and png.read_bytes().startswith(PNG)
