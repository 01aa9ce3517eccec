"""utils/methods.py: the one method table the scripts, the report and the figures read, and the run layout."""
import subprocess
import sys

import pytest

from utils import methods
from utils.io import UserError


def settings(name, k="3") -> tuple:
    s = methods.method_settings(name, k)
    return s["negatives"], s["num_negatives"], s["recipe_args"], s["sft_step"], s["dpo_step"], s["genre_weighting"]


@pytest.mark.parametrize("name, expected", [
    ("SPRec", ("self", 1, "", True, True, False)),
    ("DPO", ("random", 1, "", False, True, False)),
    ("DPO+SFT", ("random", 1, "", True, True, False)),
    ("S-DPO", ("random", 3, "dpo.loss_type=sdpo", False, True, False)),
    ("DMPO", ("random", 3, "dpo.loss_type=dmpo", False, True, False)),
    ("SemanticDPO", ("semantic", 1, "", False, True, False)),
    ("GenreSFT", ("random", 1, "", True, False, True)),
    ("SFT-only", ("random", 1, "", True, False, False)),
])
def test_each_method_runs_with_its_negatives_loss_and_steps(name, expected):
    # what shell/SPRec.sh ran each method with before the table existed (its bash case), value for value
    assert settings(name) == expected


def test_the_table_is_consistent():
    names = [m.name for m in methods.METHODS]
    assert len(set(names)) == len(names) and names[:3] == ["MostPop", "SFT", "SPRec"]
    assert methods.BASELINES == ("MostPop", "DPO", "DPO+SFT", "S-DPO", "DMPO", "SemanticDPO", "GenreSFT", "SFT-only")
    for m in methods.METHODS:
        assert set(m.steps) <= {"SFT", "DPO"} and list(m.steps) == sorted(m.steps, key=["SFT", "DPO"].index)
        assert bool(m.negatives) == m.iterative and m.negatives in ("", "self", "random", "semantic")
        assert m.multi_negative_loss in ("", "sdpo", "dmpo") and not (m.multi_negative_loss and "DPO" not in m.steps)
        if m.iterative:
            assert m.result_step == m.steps[-1] and m.implicit_step == (m.steps[0] if len(m.steps) == 1 else None)


@pytest.mark.parametrize("name, k, message", [
    ("PPO", "3", "METHOD must be one of SPRec, DPO, DPO+SFT, S-DPO, DMPO, SemanticDPO, GenreSFT, SFT-only, got 'PPO'"),
    ("MostPop", "3", "METHOD=MostPop takes no self-play iterations"),
    ("S-DPO", "0", "NUM_NEGATIVES must be a positive integer, got '0'"),
    ("DMPO", "two", "NUM_NEGATIVES must be a positive integer, got 'two'"),
])
def test_bad_methods_are_one_line(name, k, message):
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        methods.method_settings(name, k)


def test_a_non_multi_negative_method_ignores_num_negatives():
    assert methods.method_settings("DPO", "zero")["num_negatives"] == 1


def test_layout(tmp_path):
    base = methods.method_dir(tmp_path, "SPRec", "ML100K")
    for d in ("it10", "it2", "it0", "notes", "it1x"):
        (base / d).mkdir(parents=True)
    (base / "it3").write_text("")  # a file, not an iteration
    assert [(i, d.name) for i, d in methods.iteration_dirs(base)] == [(0, "it0"), (2, "it2"), (10, "it10")]
    assert methods.locate(base / "it2" / "DPO") == (base.resolve(), ["SPRec", "ML100K"], 2, "DPO")
    sft = (tmp_path / "SFT" / "ML100K").resolve()
    assert methods.locate(sft) == (sft, ["SFT", "ML100K"], None, "")
    assert methods.iteration_dir(tmp_path, "SPRec", "ML100K", 2) == base / "it2"
    assert methods.curve_stage_dir(tmp_path, 512, "ML100K") == tmp_path / "SFT-512" / "ML100K"
    assert methods.curve_slice(tmp_path, "ML100K", 512) == tmp_path / "slices/ML100K/records-512.jsonl"


def test_cli_prints_the_table():
    p = subprocess.run([sys.executable, "-m", "utils.methods"], capture_output=True, text=True)
    assert p.returncode == 0 and [line.split()[0] for line in p.stdout.splitlines()[1:]] == [
        m.name for m in methods.METHODS]
