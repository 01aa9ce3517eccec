"""The evaluation definitions (docs/metrics.md), checked against numbers worked out by hand.

A six-item catalog sits on a line: each item's "embedding" is (x, 0) with x chosen per item, and every title the
tests generate has a chosen x as well, so every L2 distance is |x_title - x_item| and can be read off the table
below. `utils.grounding.embed_texts` is replaced by that table; the real sentence-embedding model is used only by
the ML-100K test at the end.

    row  id  name      x     genres (vocabulary: Action, Comedy, Drama)   weights
    0    1   Alpha     2     [Action]                                     Action 1
    1    2   Bravo     0     [Action, Comedy]                             Action 1/2, Comedy 1/2
    2    3   Charlie   1     [Comedy]                                     Comedy 1
    3    4   Delta     3     [Drama, Unknown]  (Unknown: not in vocab)    Drama 1
    4    5   Echo      4     [Unknown]                                    nothing
    5    6   Foxtrot   5     (absent from name2genre.json)                nothing

Ids are deliberately not in x order, so "ties broken by smaller item id" differs from "by smaller x". The train split
makes Alpha the target 3 times, Charlie 2, Delta 1, so the popularity deciles (eval.mostpop.item_deciles: position p
of 6 in bin p*10//6) are Alpha 0, Charlie 1, Delta 3, then the never-targets by id: Bravo 5, Echo 6, Foxtrot 8.
The popularity groups (utils.metrics.popularity_groups; 6 train targets, the items before each one in that order hold
0, 3, 5, 6, 6, 6 of them): Alpha head (0 < 20% of 6), Charlie mid (3 < 80% of 6 = 4.8), Delta, Bravo, Echo, Foxtrot
tail.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import utils.grounding as grounding
from eval import evaluate, mostpop
from utils.data import load_catalog
from utils.metrics import (
    TrainContext,
    evaluate_predictions,
    popularity_groups,
    read_eval_users,
    recomputed_metrics,
    topk_metrics,
)
from utils.prompt import parse_title, render_completion

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO / "data" / "ML100K"

ITEMS = [  # (id, name, x, genres or None when absent from name2genre.json)
    (1, "Alpha", 2.0, ["Action"]),
    (2, "Bravo", 0.0, ["Action", "Comedy"]),
    (3, "Charlie", 1.0, ["Comedy"]),
    (4, "Delta", 3.0, ["Drama", "Unknown"]),
    (5, "Echo", 4.0, ["Unknown"]),
    (6, "Foxtrot", 5.0, None),
]
GENRES = ["Action", "Comedy", "Drama"]
DECILES = {"Alpha": 0, "Bravo": 5, "Charlie": 1, "Delta": 3, "Echo": 6, "Foxtrot": 8}
TRAIN_TARGETS = ["Alpha", "Delta", "Charlie", "Alpha", "Charlie", "Alpha"]
POPULARITY = np.array([3, 0, 2, 1, 0, 0])  # by row: Alpha, Bravo, Charlie, Delta, Echo, Foxtrot
# x of the generated titles that are not catalog names (what the stand-in embedding model returns for them)
TITLE_X = {"": 10.0, "My pick: Charlie or Alpha": 1.5, "Zulu": 2.5, "Delt": 2.75}
POSITION = {name: x for _, name, x, _ in ITEMS} | TITLE_X


def _record(history, target, predict=None):
    """A record in the official shape: no structured history/target, so both are parsed from the text."""
    r = {"instruction": "Given a list of movies the user recently watched, please recommend a new movie",
         "input": "The user has watched the following movies before: " + ", ".join(f'"{h}"' for h in history),
         "output": render_completion(target)}
    if predict is not None:
        r["predict"] = [predict]
    return r


# (history, target, generated text)
CASES = [
    (["Alpha", "Bravo"], "Alpha", '"Alpha"\n'),                           # r0: exact catalog name (valid)
    (["Charlie"], "Bravo", ""),                                            # r1: empty output
    (["Delta", "Echo"], "Bravo", "My pick: Charlie or Alpha"),             # r2: no quotes: whole first line
    (["Bravo", "Unseen Movie"], "Delta", 'I liked "Zulu" a lot'),          # r3: quoted, not in the catalog
    (["Alpha", "Alpha", "Alpha"], "Nonexistent", '"Alpha"'),               # r4: target not in catalog: skipped
    (["Charlie", "Foxtrot"], "Delta", '"Delt\nsecond line'),              # r5: unclosed quote: rest of line 1
]


@pytest.fixture
def calls():
    return []


@pytest.fixture
def catalog(tmp_path, monkeypatch, calls):
    d = tmp_path / "Tiny"
    d.mkdir()
    shuffled = [ITEMS[i] for i in (3, 0, 5, 1, 4, 2)]  # file order is not id order; rows must be in id order
    files = {
        "id2name.json": {str(i): n for i, n, _, _ in shuffled},
        "name2id.json": {n: i for i, n, _, _ in shuffled},
        "name2genre.json": {n: g for _, n, _, g in shuffled if g is not None},
        "genre_dict.json": dict.fromkeys(GENRES, 0),
    }
    for name, obj in files.items():
        (d / name).write_text(json.dumps(obj))
    (d / "train.json").write_text(json.dumps([_record(["Echo"], t) for t in TRAIN_TARGETS]))

    def fake_embed(texts, model_path, batch_size=256):
        calls.append(list(texts))
        return np.array([[POSITION[t], 0.0] for t in texts], dtype=np.float32)

    monkeypatch.setattr(grounding, "embed_texts", fake_embed)
    return load_catalog(d)


def _records():
    return [_record(h, t) for h, t, _ in CASES], [p for _, _, p in CASES]


# ------------------------------------------------------------------------------------------ hand-computed answers
# Grounding order of each evaluated record (distance |x - x_item|, ties by smaller id):
#   r0 x=2    : Alpha 0 | Charlie 1 = Delta 1 (id 3 < 4) | Bravo 2 = Echo 2 (id 2 < 5) | Foxtrot 3
#               -> Alpha, Charlie, Delta, Bravo, Echo, Foxtrot          target Alpha   r=0
#   r1 x=10   : Foxtrot 5, Echo 6, Delta 7, Alpha 8, Charlie 9, Bravo 10
#               -> Foxtrot, Echo, Delta, Alpha, Charlie, Bravo          target Bravo   r=5
#   r2 x=1.5  : Alpha .5 = Charlie .5 (id 1 < 3: Alpha, although it lies to the right) | Bravo 1.5 = Delta 1.5
#               (id 2 < 4) | Echo 2.5 | Foxtrot 3.5
#               -> Alpha, Charlie, Bravo, Delta, Echo, Foxtrot          target Bravo   r=2 (wins its tie)
#   r3 x=2.5  : Alpha .5 = Delta .5 (id 1 < 4) | Charlie 1.5 = Echo 1.5 (id 3 < 5) | Bravo 2.5 = Foxtrot 2.5
#               -> Alpha, Delta, Charlie, Echo, Bravo, Foxtrot          target Delta   r=1 (loses its tie)
#   r5 x=2.75 : Delta .25, Alpha .75, Echo 1.25, Charlie 1.75, Foxtrot 2.25, Bravo 2.75
#               -> Delta, Alpha, Echo, Charlie, Foxtrot, Bravo          target Delta   r=0
#   r4 is not evaluated: its target "Nonexistent" is not a catalog name.  N = 5, n_skipped = 1.
ORDERS = [
    ["Alpha", "Charlie", "Delta", "Bravo", "Echo", "Foxtrot"],
    ["Foxtrot", "Echo", "Delta", "Alpha", "Charlie", "Bravo"],
    ["Alpha", "Charlie", "Bravo", "Delta", "Echo", "Foxtrot"],
    ["Alpha", "Delta", "Charlie", "Echo", "Bravo", "Foxtrot"],
    ["Delta", "Alpha", "Echo", "Charlie", "Foxtrot", "Bravo"],
]
RANKS = [0, 5, 2, 1, 0]
# GH (history; evaluated records only, names outside the catalog dropped):
#   Alpha(A1) Bravo(A.5 C.5) | Charlie(C1) | Delta(D1) Echo(-) | Bravo(A.5 C.5) Unseen(-) | Charlie(C1) Foxtrot(-)
#   Action 1+.5+.5 = 2, Comedy .5+1+.5+1 = 3, Drama 1; sum 6 -> GH = (2/6, 3/6, 1/6) = (12, 18, 6)/36
#   (r4's three Alphas would add 3 to Action if the skipped record were counted.)
#
# K=1  top-1: Alpha, Foxtrot, Alpha, Alpha, Delta
#   HR   = #{r < 1} / 5 = 2/5 (r0, r5)
#   NDCG = (1/log2(0+2) + 1/log2(0+2)) / 5 = 2/5
#   counts Alpha 3, Foxtrot 1, Delta 1: diversity 3, DivRatio 3/(5*1), ORRatio (3+1+1)/(5*1) = 1
#   GP: Alpha 3 -> Action 3; Delta -> Drama 1; Foxtrot nothing: (3, 0, 1)/4 = (9, 0, 3)/12;  GH = (4, 6, 2)/12
#   GP - GH = (5, -6, 1)/12: MGU = (5 + 6 + 1)/12/3 = 1/3, DGU = 5/12 - (-6/12) = 11/12
#   ValidRatio = 1/5 (only r0's "Alpha" is a catalog name; r4's valid "Alpha" is not evaluated)
#
# K=5  top-5 = the first five of each order above
#   HR   = #{r < 5} / 5 = 4/5 (all but r1)
#   NDCG = (1/log2(2) + 1/log2(4) + 1/log2(3) + 1/log2(2)) / 5 = (2.5 + 1/log2(3)) / 5
#   counts Alpha 5, Charlie 5, Delta 5, Echo 5, Bravo 3 (r0 r2 r3), Foxtrot 2 (r1 r5); total 25 = 5*5
#   diversity 6, DivRatio 6/25, ORRatio (5+5+5)/25 = 3/5
#   GP: Action 5 (Alpha) + 3*.5 (Bravo) = 6.5, Comedy 5 (Charlie) + 1.5 = 6.5, Drama 5; sum 18
#       = (13, 13, 10)/36;  GH = (12, 18, 6)/36
#   GP - GH = (1, -5, 4)/36: MGU = (1 + 5 + 4)/36/3 = 5/54, DGU = 4/36 - (-5/36) = 1/4
#   ValidRatio = 1/5
#
# Beyond accuracy (popularity 3, 0, 2, 1, 0, 0 by row; 6 catalog items). Targets: r0 Alpha (head), r1 r2 Bravo,
# r3 r5 Delta (tail); no target in the mid group.
# K=1  MRR = (1 + 1) / 5;  Coverage 3/6
#      Gini: counts over all 6 items ascending 0 0 0 1 1 3, weights 2j - 7 = -5 -3 -1 1 3 5: (1 + 3 + 15) / (6 * 5)
#      Entropy: p = 3/5, 1/5, 1/5: -(3/5 ln 3/5 + 2/5 ln 1/5)
#      ARP = (3 + 0 + 3 + 3 + 1) / 5 (Alpha, Foxtrot, Alpha, Alpha, Delta);  TailShare: Foxtrot, Delta = 2/5
#      HR head 1/1, tail 1/4 (r5 only: ranks 5 2 1 0); PopREO = std(1, 1/4) / mean = (3/8) / (5/8)
# K=5  MRR = (1 + 1/3 + 1/2 + 1) / 5;  Coverage 6/6
#      Gini: counts ascending 2 3 5 5 5 5: (-10 - 9 - 5 + 5 + 15 + 25) / (6 * 25)
#      Entropy: p = 1/5 (4 items), 3/25, 2/25
#      ARP = (5*3 + 5*2 + 5*1) / 25;  TailShare = (Delta 5 + Echo 5 + Bravo 3 + Foxtrot 2) / 25
#      HR head 1, tail 3/4; NDCG tail (1/log2(4) + 1/log2(3) + 1) / 4; PopREO = (1/8) / (7/8)
EXPECTED = {
    1: {"n": 5, "n_skipped": 1, "HR": 2 / 5, "NDCG": 2 / 5, "diversity": 3, "DivRatio": 3 / 5, "ORRatio": 5 / 5,
        "MGU": 1 / 3, "DGU": 11 / 12, "ValidRatio": 1 / 5,
        "MRR": 2 / 5, "Coverage": 1 / 2, "Gini": 19 / 30, "Entropy": -(0.6 * math.log(0.6) + 0.4 * math.log(0.2)),
        "ARP": 2.0, "TailShare": 2 / 5, "HR_head": 1.0, "HR_mid": None, "HR_tail": 1 / 4, "NDCG_head": 1.0,
        "NDCG_mid": None, "NDCG_tail": 1 / 4, "PopREO": 3 / 5},
    5: {"n": 5, "n_skipped": 1, "HR": 4 / 5, "NDCG": (2.5 + 1 / math.log2(3)) / 5, "diversity": 6,
        "DivRatio": 6 / 25, "ORRatio": 15 / 25, "MGU": 5 / 54, "DGU": 1 / 4, "ValidRatio": 1 / 5,
        "MRR": (2 + 1 / 3 + 1 / 2) / 5, "Coverage": 1.0, "Gini": 21 / 150,
        "Entropy": -(0.8 * math.log(0.2) + 0.12 * math.log(0.12) + 0.08 * math.log(0.08)),
        "ARP": 30 / 25, "TailShare": 15 / 25, "HR_head": 1.0, "HR_mid": None, "HR_tail": 3 / 4, "NDCG_head": 1.0,
        "NDCG_mid": None, "NDCG_tail": (0.5 + 1 / math.log2(3) + 1) / 4, "PopREO": 1 / 7},
}
METRICS = ("HR", "NDCG", "diversity", "DivRatio", "ORRatio", "MGU", "DGU", "ValidRatio", "MRR", "Coverage", "Gini",
           "Entropy", "ARP", "TailShare", "HR_head", "HR_mid", "HR_tail", "NDCG_head", "NDCG_mid", "NDCG_tail",
           "PopREO")


def _check(got, want):
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
            continue
        assert got[key] == pytest.approx(value, abs=1e-12), key
        if key in ("n", "n_skipped", "diversity"):
            assert type(got[key]) is int, key


# --------------------------------------------------------------------------------------------------------- tests
def test_title_extraction_cases():
    assert [parse_title(p) for _, _, p in CASES] == ["Alpha", "", "My pick: Charlie or Alpha", "Zulu", "Alpha",
                                                     "Delt"]


def test_genre_weights(catalog):
    assert catalog.names == ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]  # rows in id order
    assert catalog.genre_weights().tolist() == [[1, 0, 0], [.5, .5, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_rank_items_ties_by_smaller_id(catalog):
    items = np.array([[x, 0.0] for _, _, x, _ in ITEMS], dtype=np.float32)
    xs = [2.0, 10.0, 1.5, 2.5, 2.75]
    query = np.array([[x, 0.0] for x in xs], dtype=np.float32)
    targets = np.array([catalog.index(n) for n in ["Alpha", "Bravo", "Bravo", "Delta", "Delta"]])
    ranks, topk = grounding.rank_items(query, items, targets, k=6, chunk=2)  # chunks of 2: 3 chunks
    assert ranks.tolist() == RANKS
    assert [[catalog.names[j] for j in row] for row in topk] == ORDERS


def test_popularity_groups_by_hand():
    assert popularity_groups(POPULARITY).tolist() == [0, 2, 1, 2, 2, 2]
    # the boundaries are exact: the items before the second hold exactly 20% (not less): it is mid, not head
    assert popularity_groups(np.array([1, 1, 1, 1, 1])).tolist() == [0, 1, 1, 1, 2]


def test_every_metric_by_hand(catalog, calls):
    records, predictions = _records()
    results, ranking = evaluate_predictions(records, predictions, catalog, ks=(1, 5), embedding_model="stub",
                                            popularity=POPULARITY)
    assert sorted(results) == [1, 5]
    assert ranking.keep == [0, 1, 2, 3, 5] and ranking.n_skipped == 1
    assert [[catalog.names[j] for j in row] for row in ranking.topk] == [order[:5] for order in ORDERS]
    assert ranking.ranks.tolist() == RANKS and ranking.valid.tolist() == [True, False, False, False, False]
    for k in (1, 5):
        _check(results[k], EXPECTED[k])
        assert results[k]["topk"] == k
    # The stand-in model saw the catalog once (for the item cache), then only the titles that are not catalog names
    # (empty, unquoted, quoted-unknown, unclosed quote), each once.
    assert calls == [["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"],
                     ["", "Delt", "My pick: Charlie or Alpha", "Zulu"]]
    assert len(list(catalog.directory.glob("item_emb_*.safetensors"))) == 1
    calls.clear()  # second evaluation: item embeddings come from the cache
    again, _ = evaluate_predictions(records, predictions, catalog, ks=(1, 5), embedding_model="stub",
                                    popularity=POPULARITY)
    assert calls == [["", "Delt", "My pick: Charlie or Alpha", "Zulu"]]
    assert again == results


def test_topk_metrics_directly(catalog):
    """The ranking-level entry point (also used by baselines) gives the same numbers from the same rankings."""
    records, _ = _records()
    evaluated = [r for i, r in enumerate(records) if i != 4]
    from utils.metrics import history_rows

    histories = history_rows(evaluated, catalog)
    topk = np.array([[catalog.index(n) for n in order] for order in ORDERS])
    valid = np.array([True, False, False, False, False])
    for k in (1, 5):
        targets = np.array([catalog.index(t) for t in ("Alpha", "Bravo", "Bravo", "Delta", "Delta")])
        m = topk_metrics(np.array(RANKS), topk, k, catalog, histories, valid, targets=targets, popularity=POPULARITY)
        _check(m, {key: v for key, v in EXPECTED[k].items() if key != "n_skipped"})
        official = topk_metrics(np.array(RANKS), topk, k, catalog, histories, valid)  # without the popularity
        assert list(official) == ["n", *METRICS[:8]]


def test_all_targets_missing(catalog):
    records = [_record(["Alpha"], "Nobody"), _record(["Bravo"], "Nothing")]
    results, ranking = evaluate_predictions(records, ['"Alpha"', ""], catalog, ks=(1, 5), embedding_model="stub")
    assert ranking.topk.shape == (0, 5) and ranking.ranks.shape == (0,)
    for k in (1, 5):
        assert results[k]["n"] == 0 and results[k]["n_skipped"] == 2


def test_cli_run_official_shape_overwrites(catalog, tmp_path):
    run_dir = tmp_path / "model"
    run_dir.mkdir()
    result_json = run_dir / "test_result.json"
    # the official test_result.json: {instruction, input, output} records with a `predict` list
    result_json.write_text(json.dumps([_record(h, t, p) for h, t, p in CASES], indent=4))
    contents = []
    for _ in range(2):
        evaluate.main(evaluate.Args(str(result_json), category="Tiny", data_dir=str(catalog.directory), topk="1,5",
                                    embedding_model="stub", model="tiny-model"))
        contents.append({k: (run_dir / f"eval_top{k}.json").read_text() for k in (1, 5)})
    assert contents[0] == contents[1]  # rerun overwrites, never appends
    for k in (1, 5):
        row = json.loads(contents[1][k])  # one JSON object (json.loads rejects two concatenated objects)
        assert list(row) == ["model", "category", "topk", "n", "n_skipped", *METRICS, "embedding_model", "decoding",
                             "test_records"]
        assert len(row["test_records"]) == 16 and int(row["test_records"], 16) >= 0  # the records' fingerprint
        assert row["model"] == "tiny-model" and row["category"] == "Tiny" and row["topk"] == k
        assert row["embedding_model"] == "stub" and row["decoding"] == "greedy"
        for key in ("topk", "n", "n_skipped", *METRICS):
            assert type(row[key]) in (int, float) or EXPECTED[k].get(key, 0) is None, key  # plain numbers
        _check(row, EXPECTED[k])
    # the per-user file: the evaluated records (r4 is skipped) in order, their top-5 (K_max) and its deciles
    lines = [json.loads(x) for x in (run_dir / "eval_users.jsonl").read_text().splitlines()]
    want = [{"user": i, "target": catalog.index(t), "target_decile": DECILES[t], "rank": r if r < 5 else None,
             "topk": [catalog.index(n) for n in order[:5]], "deciles": [DECILES[n] for n in order[:5]],
             "valid": i == 0, "text": p}
            for i, (_, t, p), order, r in zip([0, 1, 2, 3, 5], [CASES[i] for i in (0, 1, 2, 3, 5)], ORDERS, RANKS)]
    assert lines == want
    assert lines[1] == {"user": 1, "target": 1, "target_decile": 5, "rank": None, "topk": [5, 4, 3, 0, 2],
                        "deciles": [8, 6, 3, 0, 1], "valid": False, "text": ""}  # r1 by hand: Bravo is 6th
    # beside it the training popularity (the records name no user: no user-activity counts), and from the two files
    # alone every metric but MGU and DGU again, as eval/recompute.py checks the committed eval files
    context = json.loads((run_dir / "eval_context.json").read_text())
    assert context == {"category": "Tiny", "n_items": 6, "popularity": POPULARITY.tolist(), "user_train_records": {}}
    for k in (1, 5):
        again = recomputed_metrics(read_eval_users(run_dir / "eval_users.jsonl", k), k,
                                   TrainContext.read(run_dir / "eval_context.json"))
        assert set(again) == {"n", *METRICS} - {"MGU", "DGU"}
        _check(again, {key: v for key, v in EXPECTED[k].items() if key not in ("n_skipped", "MGU", "DGU")})


def test_mostpop_writes_the_per_user_file(catalog, tmp_path):
    """MostPop's one list (by train popularity: Alpha, Charlie, Delta, then Bravo, Echo, Foxtrot by id) for every
    evaluated record; a target's rank is its place in that list, null beyond the top 5."""
    records = [_record(h, t) for h, t, _ in CASES] + [_record(["Alpha"], "Foxtrot")]
    (catalog.directory / "test.json").write_text(json.dumps(records))
    mostpop.main(mostpop.Args(str(tmp_path / "mp"), category="Tiny", data_dir=str(catalog.directory), topk="1,5"))
    lines = [json.loads(x) for x in (tmp_path / "mp" / "eval_users.jsonl").read_text().splitlines()]
    top = [catalog.index(n) for n in ("Alpha", "Charlie", "Delta", "Bravo", "Echo")]
    assert [x["user"] for x in lines] == [0, 1, 2, 3, 5, 6]
    assert [x["rank"] for x in lines] == [0, 3, 3, 2, 2, None]  # Alpha, Bravo, Bravo, Delta, Delta, Foxtrot
    assert all(x["topk"] == top and x["deciles"] == [0, 1, 3, 5, 6] for x in lines)
    assert all(x["valid"] is None and x["text"] is None for x in lines)
    assert lines[-1]["target_decile"] == 8


def test_ml100k_exact_titles_hit_at_one(ml100k):  # the fixture builds data/ML100K when it is missing
    from utils.data import load_split

    catalog = load_catalog(ML100K)
    records = load_split(ML100K, "test")
    predictions = [render_completion(r["target"]) if "target" in r else r["output"] for r in records]
    results, _ = evaluate_predictions(records, predictions, catalog, ks=(1, 5))
    for k in (1, 5):
        m = results[k]
        assert m["n"] + m["n_skipped"] == len(records) and m["n"] > 0
        assert m["HR"] == 1.0 and m["NDCG"] == 1.0 and m["ValidRatio"] == 1.0
    assert results[1]["diversity"] == len({r["target"] for r in records if catalog.index(r["target"]) is not None})
