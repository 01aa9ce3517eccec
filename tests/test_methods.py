"""utils/methods.py: the one method table the scripts, the report and the figures read, and the run layout."""
import subprocess
import sys

import pytest

from utils import methods
from utils.io import UserError


def shell_vars(name, k="3") -> dict:
    return dict(line.split("=", 1) for line in methods.shell_assignments(name, k).splitlines())


@pytest.mark.parametrize("name, expected", [
    ("SPRec", {"negatives": "self", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "1", "dpo_step": "1",
               "genre_weighting": "False"}),
    ("DPO", {"negatives": "random", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "0",
             "dpo_step": "1", "genre_weighting": "False"}),
    ("DPO+SFT", {"negatives": "random", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "1",
                 "dpo_step": "1", "genre_weighting": "False"}),
    ("S-DPO", {"negatives": "random", "num_negatives": "3", "method_recipe_args": "dpo.loss_type=sdpo",
               "sft_step": "0", "dpo_step": "1", "genre_weighting": "False"}),
    ("DMPO", {"negatives": "random", "num_negatives": "3", "method_recipe_args": "dpo.loss_type=dmpo",
              "sft_step": "0", "dpo_step": "1", "genre_weighting": "False"}),
    ("SemanticDPO", {"negatives": "semantic", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "0",
                     "dpo_step": "1", "genre_weighting": "False"}),
    ("GenreSFT", {"negatives": "random", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "1",
                  "dpo_step": "0", "genre_weighting": "True"}),
    ("SFT-only", {"negatives": "random", "num_negatives": "1", "method_recipe_args": "''", "sft_step": "1",
                  "dpo_step": "0", "genre_weighting": "False"}),
])
def test_each_method_runs_with_its_negatives_loss_and_steps(name, expected):
    # what shell/SPRec.sh ran each method with before the table existed (its bash case), value for value
    assert shell_vars(name) == expected


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
        methods.shell_assignments(name, k)


def test_a_non_multi_negative_method_ignores_num_negatives():
    assert shell_vars("DPO", "zero")["num_negatives"] == "1"


def test_layout(tmp_path):
    base = methods.method_dir(tmp_path, "SPRec", "ML100K")
    for d in ("it10", "it2", "it0", "notes", "it1x"):
        (base / d).mkdir(parents=True)
    (base / "it3").write_text("")  # a file, not an iteration
    assert [(i, d.name) for i, d in methods.iteration_dirs(base)] == [(0, "it0"), (2, "it2"), (10, "it10")]
    assert methods.locate(base / "it2" / "DPO") == (base.resolve(), ["SPRec", "ML100K"], 2, "DPO")
    sft = (tmp_path / "SFT" / "ML100K").resolve()
    assert methods.locate(sft) == (sft, ["SFT", "ML100K"], None, "")


def test_cli_prints_what_the_scripts_read():
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "utils.methods", *args], capture_output=True, text=True)

    assert cli("--roster").stdout.split() == list(methods.BASELINES)
    assert "dpo.loss_type=dmpo" in cli("--shell", "DMPO", "--num_negatives", "2").stdout
    bad = cli("--shell", "PPO")
    assert bad.returncode == 2 and bad.stderr.startswith("error: METHOD must be one of") and not bad.stdout
