"""utils/tracking.py: the tracker check, run names from the output layout, and evaluation metrics logged per iteration
(wandb and tensorboard stand-ins record what they were given; the packages are optional and not installed here)."""
import sys
import types

import pytest

from utils import tracking
from utils.io import UserError


@pytest.mark.parametrize("directory, name", [
    ("models/SFT/ML100K", "SFT/ML100K"),
    ("runs/seed43/SPRec/ML100K/it0/DPO", "SPRec/ML100K/it0/DPO"),
    ("models/SPRec/ML100K/it12/SFT", "SPRec/ML100K/it12/SFT"),
    ("models/DPO/ML100K/it1", "DPO/ML100K/it1"),
])
def test_run_names_say_method_category_iteration_and_step(directory, name):
    assert tracking.run_name(directory) == name
    assert tracking.tracking_args("none", directory) == {"report_to": "none"}


def test_a_missing_or_unknown_tracker_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"^REPORT_TO=tensorboard needs the tensorboard package: pip install "
                                        r"tensorboard$"):
        tracking.check_tracker("tensorboard")
    with pytest.raises(UserError, match="REPORT_TO=mlflow: use none, wandb or tensorboard"):
        tracking.check_tracker("mlflow")
    assert tracking.check_tracker("none") == "none"


RESULTS = {1: {"topk": 1, "n": 10, "n_skipped": 0, "HR": 0.1, "NDCG": 0.1, "DivRatio": 0.5, "embedding_model": "x"},
           5: {"topk": 5, "n": 10, "n_skipped": 0, "HR": 0.3, "NDCG": 0.2, "DivRatio": 0.4, "embedding_model": "x"}}
SCALARS = {"top1/n": 10.0, "top1/HR": 0.1, "top1/NDCG": 0.1, "top1/DivRatio": 0.5,
           "top5/n": 10.0, "top5/HR": 0.3, "top5/NDCG": 0.2, "top5/DivRatio": 0.4}


@pytest.fixture
def installed(monkeypatch):
    """Pretend the tracker packages are installed."""
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: object())


def test_tensorboard_gets_one_series_per_step_kind_with_the_iteration_as_step(tmp_path, monkeypatch, installed):
    written = []

    class Writer:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, global_step):
            written.append((self.log_dir, tag, value, global_step))

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    method = tmp_path / "SPRec" / "ML100K"
    for i in (0, 1):
        tracking.log_eval_metrics("tensorboard", method / f"it{i}" / "DPO", RESULTS)
    tracking.log_eval_metrics("tensorboard", tmp_path / "DPO" / "ML100K" / "it1", RESULTS, decoding="constrained")
    tracking.log_eval_metrics("tensorboard", tmp_path / "SFT" / "ML100K", RESULTS)
    by_dir = {}
    for log_dir, tag, value, step in written:
        by_dir.setdefault(log_dir, []).append((tag, value, step))
    assert sorted(by_dir) == sorted(str(d) for d in (method / "runs" / "eval_DPO",
                                                     tmp_path / "DPO" / "ML100K" / "runs" / "eval_constrained",
                                                     tmp_path / "SFT" / "ML100K" / "runs" / "eval"))
    assert by_dir[str(method / "runs" / "eval_DPO")] == [(t, v, i) for i in (0, 1) for t, v in SCALARS.items()]
    assert {s for _, _, s in by_dir[str(tmp_path / "DPO" / "ML100K" / "runs" / "eval_constrained")]} == {1}


def test_wandb_resumes_one_run_per_series_and_logs_at_the_iteration(tmp_path, monkeypatch, installed):
    calls = []

    class Run:
        def log(self, data, step):
            calls.append(("log", data, step))

        def finish(self):
            calls.append(("finish",))

    def init(**kwargs):
        calls.append(("init", kwargs))
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.setenv("WANDB_PROJECT", "sprec-test")
    for i in (0, 1):
        tracking.log_eval_metrics("wandb", tmp_path / "SPRec" / "ML100K" / f"it{i}" / "SFT", RESULTS)
    inits = [c[1] for c in calls if c[0] == "init"]
    assert [k["name"] for k in inits] == ["SPRec/ML100K/SFT eval"] * 2
    assert inits[0]["id"] == inits[1]["id"] and inits[0]["resume"] == "allow"
    assert inits[0]["project"] == "sprec-test" and inits[0]["group"] == "SPRec/ML100K"
    assert [(c[1], c[2]) for c in calls if c[0] == "log"] == [(SCALARS, 0), (SCALARS, 1)]
    assert sum(c[0] == "finish" for c in calls) == 2
    calls.clear()
    tracking.log_eval_metrics("wandb", tmp_path / "SPRec" / "ML100K" / "it0" / "DPO", RESULTS)
    assert calls[0][1]["id"] != inits[0]["id"]  # the DPO steps are another series


def test_no_tracker_logs_nothing(tmp_path, monkeypatch):
    for package in ("wandb", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, package, None)  # an import of either tracker would fail
    model_dir = tmp_path / "SFT" / "ML100K"
    model_dir.mkdir(parents=True)
    assert tracking.log_eval_metrics("none", model_dir, RESULTS) is None
    assert sorted(tmp_path.rglob("*")) == [model_dir.parent, model_dir]  # no runs/ folder, no event file
