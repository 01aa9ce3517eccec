"""eval/reground.py: committed predictions evaluated again from their per-user files alone."""
import json
import shutil

import pytest
from conftest import ROOT

from eval import random_baseline, reground
from utils.io import UserError

DEMO = ROOT / "results" / "demo"


@pytest.fixture
def run_root(tmp_path, ml100k):
    """The committed demo's SFT model and MostPop, and a Random row, as a run root."""
    for method in ("SFT", "MostPop"):
        shutil.copytree(DEMO / method, tmp_path / "run" / method)
    random_baseline.main(random_baseline.Args(str(tmp_path / "run" / "Random" / "ML100K")))
    return tmp_path / "run"


def test_regrounding_with_the_same_model_gives_the_committed_files(run_root, tmp_path):
    reground.run(str(run_root), str(tmp_path / "out"), embedding_model="")
    for method in ("SFT", "MostPop", "Random"):  # the ranked lists (MostPop, Random) copied as they are
        for name in ("eval_top1.json", "eval_top5.json", "eval_users.jsonl"):
            assert (tmp_path / "out" / method / "ML100K" / name).read_bytes() == \
                (run_root / method / "ML100K" / name).read_bytes(), (method, name)


def test_records_that_are_not_the_evaluated_ones_are_refused(run_root, tmp_path):
    users = run_root / "SFT/ML100K/eval_users.jsonl"
    rows = [json.loads(x) for x in users.read_text().splitlines()]
    users.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))  # one user fewer than evaluated
    with pytest.raises(UserError, match="the rebuilt records are not the evaluated ones"):
        reground.run(str(run_root), str(tmp_path / "out"), embedding_model="")
    with pytest.raises(UserError, match="must differ from --run_root"):
        reground.run(str(run_root), str(run_root), embedding_model="")
