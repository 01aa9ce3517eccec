"""utils/io.py: list-valued arguments survive the trip from the shell through fire; strict command lines; settings
added later."""
import dataclasses
import os
import re
import subprocess
import sys

import fire
import pytest
from conftest import ROOT

from utils.cli import comma_list
from utils.io import UserError


@pytest.mark.parametrize("arg, expected", [("sigmoid", ["sigmoid"]), ("sigmoid,sft", ["sigmoid", "sft"]),
                                           ("q_proj,v_proj", ["q_proj", "v_proj"]), ("all-linear", ["all-linear"])])
def test_comma_lists_round_trip_through_fire(arg, expected):
    # fire turns "a,b" into the tuple ('a', 'b'); str() of that tuple split on commas was the LOSS_TYPE crash
    assert fire.Fire(lambda value: comma_list(value, "--value"), command=["--value", arg]) == expected


def test_an_empty_list_is_a_clear_error():
    with pytest.raises(UserError, match="--loss_type is empty"):
        comma_list(" , ", "--loss_type")


def test_a_setting_added_later_reads_as_its_old_value(tmp_path):
    """A run config written before --decoding existed is a greedy run: a greedy rerun reuses it, a constrained one
    stops with the difference."""
    from utils.provenance import check_same_settings, write_run_config

    write_run_config(tmp_path, "inference", {"seed": 1, "split": "test"})
    check_same_settings(tmp_path, "inference", {"seed": 1, "split": "test", "decoding": "greedy"})
    with pytest.raises(UserError, match="decoding 'greedy' -> 'constrained'"):
        check_same_settings(tmp_path, "inference", {"seed": 1, "split": "test", "decoding": "constrained"})


def _cli(a: int = 1, name: str = "", flag: bool = False):
    pass


@pytest.mark.parametrize("argv, message", [
    (["--a", "1", "5"], "unexpected argument '5': expected --name value for each of --a, --flag, --name"),
    (["7"], "unexpected argument '7'"),
    (["--b", "1"], "unknown option --b:"),
    (["--b=1"], "unknown option --b:"),
    (["--a"], "option --a needs a value"),
])
def test_cli_arguments_are_strict(argv, message):
    from utils.cli import check_cli_args

    with pytest.raises(UserError, match=re.escape(message)):
        check_cli_args(_cli, argv)


@pytest.mark.parametrize("argv", [[], ["--a", "-1", "--name", ""], ["--a=2", "--flag", "--name", "x"], ["--flag"],
                                  ["--flag", "False", "--a", "3"]])
def test_cli_arguments_in_the_documented_form_pass(argv):
    from utils.cli import check_cli_args

    check_cli_args(_cli, argv)


@dataclasses.dataclass
class _Args:
    out: str
    k: int = 1
    flag: bool = False


def test_a_stage_takes_its_options_from_its_args_dataclass(monkeypatch):
    """`run_cli(main)` with `main(a: Args)`: the options are the dataclass's fields, strict as ever, and main gets
    the dataclass built from the command line."""
    from utils.cli import check_cli_args, cli_help, run_cli

    seen = []

    def main(a: _Args):
        seen.append(a)

    with pytest.raises(UserError, match="unknown option --b:"):
        check_cli_args(main, ["--out", "x", "--b", "1"])
    assert "  --out VALUE (required)" in cli_help(main) and "  --k (default: 1)" in cli_help(main)
    monkeypatch.setattr(sys, "argv", ["module", "--k", "3", "--out", "x", "--flag"])
    run_cli(main)
    assert seen == [_Args("x", 3, True)]


ENTRY_POINTS = ["train.sft", "train.dpo", "train.self_play", "eval.inference", "eval.evaluate", "eval.mostpop",
                "eval.random_baseline", "eval.sasrec",
                "eval.report", "eval.stats", "eval.recompute", "eval.readme_tables", "eval.learning_curve",
                "utils.tiny_model", "utils.pretrained", "bench.random_model"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_entry_point_has_help_and_rejects_a_stray_argument(module, monkeypatch, capsys):
    # in-process, as `python -m module` runs it (one subprocess below checks the real command line)
    from conftest import entry_function

    from utils.cli import run_cli

    fn = entry_function(module)

    def run(*argv):
        monkeypatch.setattr(sys, "argv", [module, *argv])
        with pytest.raises(SystemExit) as e:
            run_cli(fn)
        return e.value.code, capsys.readouterr()

    code, out = run("--help")
    assert code == 0 and "usage: python -m " + module in out.out and "options, each as --name value" in out.out
    code, out = run("stray")
    assert code == 2 and out.err.startswith("error: unexpected argument 'stray'") and len(out.err.splitlines()) == 1


def test_help_from_the_command_line():
    env = {**os.environ, "PAGER": "cat"}
    p = subprocess.run([sys.executable, "-m", "train.dpo", "--help"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith("The DPO step") and "  --model_dir VALUE (required)" in p.stdout
