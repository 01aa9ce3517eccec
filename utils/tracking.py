"""Experiment tracking (REPORT_TO=wandb or tensorboard): the check that comes before any work, readable run names,
and the evaluation metrics logged beside the trainer's losses.

usage: python -m utils.tracking --report_to tensorboard   (the launch scripts' check: one line and exit 2 if missing)

Names follow the output layout <root>/<Method>/<Category>[/it<i>[/<Step>]]: a stage's run is named e.g.
`SPRec/ML100K/it0/DPO`, `DPO/ML100K/it1` or `SFT/ML100K`. Evaluation metrics go to one series per method, category
and step kind (e.g. `SPRec/ML100K/DPO eval`), with the iteration as the step, so a tracker draws HR@5, DivRatio@5...
across iterations: for tensorboard under <root>/<Method>/<Category>/runs/eval[_<Step>], for wandb in a run of that
name (resumed by a stable id, in WANDB_PROJECT as transformers' own runs).
"""
import hashlib
import importlib.util
import os

from utils.cli import run_cli
from utils.io import UserError
from utils.methods import locate

TRACKERS = {"wandb": "wandb", "tensorboard": "tensorboard"}  # REPORT_TO value -> the package it needs


def check_tracker(report_to: str) -> str:
    """'none' or a tracker whose package is installed; otherwise one line with the install command (transformers
    would fail only after the model loaded, and self-play would first have generated for minutes)."""
    if report_to in ("none", "", None):
        return "none"
    package = TRACKERS.get(report_to)
    if package is None:
        raise UserError(f"REPORT_TO={report_to}: use none, {' or '.join(TRACKERS)}")
    if importlib.util.find_spec(package) is None:
        raise UserError(f"REPORT_TO={report_to} needs the {package} package: pip install {package}")
    return report_to


def run_name(directory) -> str:
    """A stage's run name: method, category, iteration and step, from its output directory."""
    _, head, iteration, step = locate(directory)
    return "/".join(head + ([f"it{iteration}"] if iteration is not None else []) + ([step] if step else []))


def tracking_args(report_to: str, output_dir) -> dict:
    """Trainer arguments for experiment tracking, checked before any work."""
    if check_tracker(report_to) == "none":
        return {"report_to": "none"}
    return {"report_to": report_to, "run_name": run_name(output_dir)}


def log_eval_metrics(report_to: str, model_dir, results: dict, decoding: str | None = "greedy") -> None:
    """Log an evaluation ({K: metrics} as utils.metrics returns) to the tracker: series `<Method>/<Category>[/<Step>]
    eval[ constrained]`, step = the iteration (0 outside the iterations)."""
    if check_tracker(report_to) == "none":
        return
    base, head, iteration, step_kind = locate(model_dir)
    constrained = decoding not in ("greedy", None)
    series = "/".join(head + ([step_kind] if step_kind else [])) + " eval" + (f" {decoding}" if constrained else "")
    step = iteration or 0
    scalars = {f"top{k}/{key}": float(value) for k, m in results.items() for key, value in m.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("topk", "n_skipped")}
    if report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        name = "_".join(["eval", *([step_kind.replace("/", "_")] if step_kind else []),
                         *([decoding] if constrained else [])])
        writer = SummaryWriter(log_dir=str(base / "runs" / name))
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=step)
        writer.close()
    else:
        import wandb

        run_id = hashlib.sha1(f"{base}|{series}".encode()).hexdigest()[:16]  # the same series resumes its run
        run = wandb.init(project=os.environ.get("WANDB_PROJECT", "huggingface"), name=series, id=run_id,
                         resume="allow", job_type="eval", group="/".join(head))
        run.log(scalars, step=step)
        run.finish()


def check(report_to: str = "none"):
    check_tracker(report_to)


if __name__ == "__main__":
    run_cli(check)
