"""eval/sasrec.py (SASRec and GRU4Rec from RecBole on the project's split), eval/random_baseline.py, and their rows.

The converter (sequences, the split check, RecBole's atomic files) and the exporter are pure Python and run here
always. The RecBole run itself needs .venv-recbole (bash shell/setup.sh envs/recbole: about 2.5-4 minutes to build on
this 2-core machine, more than the suite can spend), so those tests skip, saying so, where it is absent.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from data import movielens
from data.prepare import main as prepare
from eval import random_baseline, report, sasrec
from utils import methods
from utils.data import REPO_ROOT, load_catalog, load_split
from utils.io import UserError
from utils.metrics import TrainContext, read_eval_users

N_USERS, N_ITEMS = 12, 24
RECBOLE_PYTHON = REPO_ROOT / ".venv-recbole" / "bin" / "python"


def write_grouplens(folder: Path) -> Path:
    """A small GroupLens ml-100k folder: 24 movies (ids 23 and 24 share a title: merged into one catalog item) and
    12 users with 8 to 15 interactions each, their file order not chronological, one tie in time."""
    folder.mkdir(parents=True, exist_ok=True)
    genres = movielens.ML_GENRES
    lines = []
    for k in range(1, N_ITEMS + 1):
        title = f"Movie {min(k, 23)} (199{k % 10})" if k < 23 else "Movie 23 (1993)"
        flags = ["0"] + ["1" if g in (genres[k % 18], genres[(3 * k) % 18]) else "0" for g in genres]
        lines.append("|".join([str(k), title, f"01-Jan-199{k % 10}", "", "http://us.imdb.com/x", *flags]))
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    rng = np.random.default_rng(0)
    data = []
    for u in range(1, N_USERS + 1):
        items = rng.choice(np.arange(1, N_ITEMS + 1), size=8 + u % 8, replace=False)
        times = 880000000 + 100 * np.arange(len(items))
        times[2] = times[1]  # a tie: file order decides
        data += [f"{u}\t{k}\t3\t{t}" for k, t in zip(items, times)]
    (folder / "u.data").write_text("\n".join(data[::-1]) + "\n")
    return folder


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, Path]:
    """(the category directory, its raw folder): prepared by data.prepare like ML100K, 20 train windows sampled."""
    raw = write_grouplens(tmp_path / "ml-100k")
    prepare(["ml-100k", "--raw", str(raw), "--out_root", str(tmp_path / "data"), "--name", "Tiny",
             "--train_size", "20"])
    return tmp_path / "data" / "Tiny", raw


def rows(catalog, names):
    return [catalog.index(n) for n in names]


# ------------------------------------------------------------------------------------------------ sequences
def test_sequences_are_the_splits(tiny):
    data, raw = tiny
    catalog = load_catalog(data)
    seqs = sasrec.source_sequences(catalog, str(raw))
    sasrec.check_against_split(seqs, data, catalog, 10)
    assert len(seqs) == N_USERS and len(catalog) == N_ITEMS - 1  # the two "Movie 23" merged
    for r in load_split(data, "test"):
        s = seqs[r["user"]]
        assert s[-1] == catalog.index(r["target"]) and s[-1 - len(r["history"]):-1] == rows(catalog, r["history"])
    for r in load_split(data, "valid"):
        assert seqs[r["user"]][-2] == catalog.index(r["target"])
    assert all(len(set(s)) == len(s) for s in seqs.values())  # items are distinct per user, as the protocol keeps


@pytest.mark.parametrize("split, change, message", [
    ("test", lambda r: r["history"].reverse(), "its history is not the 10 items before its target"),
    ("valid", lambda r: r.update(target=r["history"][0]), "which is not where a valid target is"),
    ("train", lambda r: r.update(user="999"), "no such user in the source's sequences"),
])
def test_a_split_from_another_source_is_refused(tiny, split, change, message):
    data, raw = tiny
    records = json.loads((data / f"{split}.json").read_text())
    change(records[3])
    (data / f"{split}.json").write_text(json.dumps(records))
    catalog = load_catalog(data)
    with pytest.raises(UserError, match=rf"{split}.json: record 3 \(user .*\): .*{message}"):
        sasrec.check_against_split(sasrec.source_sequences(catalog, str(raw)), data, catalog, 10)


def test_atomic_files_hold_the_sequences_in_order(tiny, tmp_path):
    data, raw = tiny
    catalog = load_catalog(data)
    seqs = sasrec.source_sequences(catalog, str(raw))
    d = sasrec.write_atomic_files(seqs, catalog, tmp_path / "atomic", "Tiny")
    inter = (d / "Tiny.inter").read_text().splitlines()
    assert inter[0] == "user_id:token\titem_id:token\ttimestamp:float"
    back = {}
    for line in inter[1:]:
        user, item, t = line.split("\t")
        back.setdefault(user, []).append((float(t), int(item)))
    assert {u: [i for _, i in sorted(v)] for u, v in back.items()} == seqs
    # leave-one-out on this time order holds out exactly each user's test item (last) and valid item (before it)
    tests = {r["user"]: catalog.index(r["target"]) for r in load_split(data, "test")}
    valids = {r["user"]: catalog.index(r["target"]) for r in load_split(data, "valid")}
    for u, v in back.items():
        by_time = [i for _, i in sorted(v)]
        assert by_time[-1] == tests[u] and by_time[-2] == valids[u] and tests[u] not in by_time[:-1]
    items = (d / "Tiny.item").read_text().splitlines()
    assert items[0] == "item_id:token\ttitle:token_seq" and len(items) == 1 + len(catalog)
    assert items[1 + catalog.index("Movie 23 (1993)")].endswith("\tMovie 23 (1993)")


# --------------------------------------------------------------------------------------------------- export
def test_export_ranks_the_whole_catalog_without_removing_seen_items(tiny, tmp_path):
    data, _ = tiny
    catalog = load_catalog(data)
    test = load_split(data, "test")
    keep, targets = list(range(len(test))), np.array([catalog.index(r["target"]) for r in test])
    history = [rows(catalog, r["history"]) for r in test]
    scores = np.zeros((len(test), len(catalog)))
    scores[np.arange(len(test)), targets] = 3.0  # every user's target first...
    scores[0, history[0][0]] = 5.0  # ...but user 0's seen item above it (kept in the headline lists)...
    scores[1, :] = 0.0  # ...and user 1's scores all tie: the catalog order decides
    context = TrainContext(np.arange(len(catalog))[::-1].copy(), {})
    scored = sasrec.TestUsers(test, keep, targets, 0, catalog, context, [1, 5], "Tiny")
    res = sasrec.export(scores, scored, tmp_path / "m", "SASRec")
    users = read_eval_users(tmp_path / "m" / "eval_users.jsonl", 5)
    assert users["topk"][0][:2].tolist() == [history[0][0], targets[0]] and users["ranks"][0] == 1
    assert users["topk"][1].tolist() == [0, 1, 2, 3, 4] and users["ranks"][1] == min(targets[1], 5)
    expected = (len(test) - 2 + int(targets[1] == 0)) / len(test)  # HR@1: every user but 0 and (unless row 0) 1
    assert res[1]["HR"] == pytest.approx(expected)
    assert json.loads((tmp_path / "m" / "eval_top1.json").read_text())["HR"] == pytest.approx(expected)
    # the seen-items-removed variant: user 0's history item goes to the bottom, its target to the top
    sasrec.export(scores, scored, tmp_path / "s", "SASRec", seen=history)
    seen = read_eval_users(tmp_path / "s" / "eval_users.jsonl", 5)
    assert seen["ranks"][0] == 0 and not set(seen["topk"][1].tolist()) & set(history[1])


def test_random_baseline(tiny, tmp_path):
    data, _ = tiny

    def run(out, seed):
        random_baseline.main(random_baseline.Args(str(out), data_dir=str(data), topk="1,5", seed=seed))
        return read_eval_users(out / "eval_users.jsonl", 5)

    a, b, c = run(tmp_path / "a", 1), run(tmp_path / "b", 1), run(tmp_path / "c", 2)
    assert (a["topk"] == b["topk"]).all() and not (a["topk"] == c["topk"]).all()
    n = len(load_catalog(data))
    assert all(len(set(t)) == 5 for t in a["topk"].tolist()) and a["ranks"].max() < n
    # every item in a top-5 is ranked where the lists say: rank < 5 exactly when the target is in the list
    assert all((r < 5) == (t in top) for r, t, top in zip(a["ranks"], [k[1] for k in a["keys"]], a["topk"].tolist()))
    row = json.loads((tmp_path / "a" / "eval_top5.json").read_text())
    assert row["model"] == "Random" and row["decoding"] is None and row["ValidRatio"] is None


# ------------------------------------------------------------------------------------------------- the rows
def test_reference_rows_in_the_method_table_and_the_report(tmp_path):
    for name in ("Random", "SASRec", "GRU4Rec"):
        m = methods.BY_NAME[name]
        assert not m.iterative and m.made_by.startswith("python -m eval.") and name not in methods.BASELINES
        with pytest.raises(UserError, match=f"METHOD={name} takes no self-play iterations: python -m eval"):
            methods.iterative_method(name)
    root = tmp_path / "r"
    for name, hr in (("MostPop", 0.03), ("Random", 0.003), ("SASRec", 0.05)):
        d = root / name / "Toy"
        d.mkdir(parents=True)
        for k in (1, 5):
            (d / f"eval_top{k}.json").write_text(json.dumps({"model": name, "topk": k, "n": 10, "HR": hr}))
    text, _, _, notes = report.build_report([root], "Toy")
    labels = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")][1:]
    assert labels == ["MostPop", "Random", "SASRec"]
    assert not any("GRU4Rec" in n for n in notes)  # a reference row that was not run is not a gap


@pytest.mark.parametrize("argv, message", [
    (["--model", "BERT4Rec"], "--model must be one of SASRec, GRU4Rec, got 'BERT4Rec'"),
    (["--max_len", "0"], "--max_len must be a positive integer, got 0"),
    (["--learning_rate", "fast"], "--learning_rate must be a positive number, got 'fast'"),
    (["--recbole_args", "dropout"], "--recbole_args: 'dropout' is not key=value"),
])
def test_bad_options_are_one_line(tmp_path, argv, message):
    from conftest import run_module

    p = run_module("eval.sasrec", "--output_dir", tmp_path / "out", *argv)
    assert p.returncode == 2 and p.stderr.strip() == f"error: {message}" and not (tmp_path / "out").exists()


def test_the_project_environment_says_where_recbole_runs(tiny, tmp_path):
    import importlib.util

    from conftest import run_module

    if importlib.util.find_spec("recbole") is not None:
        pytest.skip("recbole is importable in this interpreter (the project's .venv never has it)")
    data, raw = tiny
    p = run_module("eval.sasrec", "--data_dir", data, "--raw", raw, "--output_dir", tmp_path / "out")
    assert p.returncode == 2 and "RecBole is not importable here" in p.stderr
    assert "shell/setup.sh envs/recbole" in p.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ the RecBole run
def recbole_env_missing() -> str | None:
    """Why the RecBole run cannot be tested here, or None."""
    if not RECBOLE_PYTHON.is_file():
        return "no .venv-recbole (bash shell/setup.sh envs/recbole builds it: minutes, more than the suite can spend)"
    find = "import importlib.util, sys; sys.exit(importlib.util.find_spec('recbole') is None)"
    if subprocess.run([str(RECBOLE_PYTHON), "-c", find]).returncode != 0:
        return ".venv-recbole has no recbole: rerun bash shell/setup.sh envs/recbole"
    return None


MISSING = recbole_env_missing()
needs_recbole = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def run_recbole(*argv) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run([str(RECBOLE_PYTHON), "-m", "eval.sasrec", *map(str, argv)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_recbole
@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec"])
def test_recbole_trains_exports_and_is_scored_by_the_metrics(tiny, tmp_path, model):
    data, raw = tiny
    out = tmp_path / model / "Tiny"
    args = ["--data_dir", data, "--category", "Tiny", "--raw", raw, "--output_dir", out, "--model", model,
            "--epochs", 2, "--max_len", 5, "--train_batch_size", 16]
    p = run_recbole(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Warning" not in p.stderr, p.stderr[-3000:]  # RecBole's deprecated GradScaler is not on our path
    assert "RecBole's leave-one-out split equals the project's sequences" in p.stdout  # no test item in training
    catalog = load_catalog(data)
    test = load_split(data, "test")
    users = read_eval_users(out / "eval_users.jsonl", 5)
    assert [u for u, _ in users["keys"]] == [r["user"] for r in test]
    assert [t for _, t in users["keys"]] == [catalog.index(r["target"]) for r in test]
    for k in (1, 5):
        row = json.loads((out / f"eval_top{k}.json").read_text())
        assert row["model"] == model and row["n"] == len(test) and row["ValidRatio"] is None
        assert row["HR"] == pytest.approx(float(np.mean(users["ranks"] < k)))  # utils.metrics on these lists
        assert (out / "seen_removed" / f"eval_top{k}.json").is_file()
    config = json.loads((out / f"run_config_{model.lower()}.json").read_text())
    facts = config["args"]
    assert facts["library"] == "RecBole" and facts["library_versions"]["recbole"] == "1.2.1"
    assert facts["epochs_run"] == 2 and facts["best_epoch"] in (0, 1) and facts["history_len"] == 5
    assert facts["seed"] == 42 and facts["train_seconds"] > 0 and len(facts["curve"]) == 2
    assert set(facts["hyperparameters"]) >= {"learning_rate", "train_batch_size", "hidden_size"}
    assert str(REPO_ROOT) not in json.dumps(config)  # no path of this checkout (utils.stage.portable)
    # finished: a rerun with the same settings skips, with others stops
    again = run_recbole(*args)
    assert again.returncode == 0 and "is complete; skipping" in again.stdout
    other = run_recbole(*args[:-2], "--train_batch_size", 32)
    assert other.returncode != 0 and "train_batch_size 16 -> 32" in other.stderr
