"""Provenance: the run config every stage, evaluation and build writes beside what it made, and the settings
semantics a rerun compares (utils/stage.py decides from them whether a finished stage is reused).

A run config records what produced a directory: the stage, its arguments, its result-changing settings (threads and
kernels included, utils/numerics.py) and their hash, the package versions, the git commit, the machine, when it
finished and how long its process had run. No machine path is recorded (`portable`), so run configs compare and read
the same on any machine and in any clone.
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from utils.io import UserError, read_json, write_json

ROOT = Path(__file__).resolve().parents[1]  # the repository


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a git checkout): a run made from changed code is
    not the commit it names."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def portable(obj):
    """A record without this machine's paths: a path inside the repository becomes relative to it, one under the home
    directory starts with ~, so run configs compare and read the same on any machine and in any clone."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/"):
        for base, name in ((ROOT, None), (Path.home(), "~")):
            try:
                rel = Path(obj).relative_to(base)
            except ValueError:
                continue
            return str(rel) if name is None else f"{name}/{rel}"
    return obj


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "sentence-transformers", "tokenizers",
                "safetensors", "numpy", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# Arguments that do not change a stage's result: where it reads and writes within a run (a run directory may be moved
# or copied), how it logs, memory and speed knobs. Everything else a stage is called with is its result-changing
# configuration, stored (with its hash) and compared on a rerun.
NOT_RESULT_CHANGING = {"output_dir", "model_dir", "resume_from", "train_file", "data_dir", "report_to",
                       "activation_checkpointing", "trust_remote_code", "token_budget", "force", "evaluate", "topk",
                       "embedding_model", "recipe", "recipe_args",
                       # recipe fields (utils/recipe.py): logging, evaluation and memory
                       "logging_steps", "evals_per_run", "per_device_train_batch_size", "per_device_eval_batch_size",
                       "dataloader_num_workers", "precompute_ref_log_probs", "precompute_ref_batch_size"}


# Result-changing settings added after runs were recorded, with the value every earlier run used: a run config without
# one reads as that value (a greedy rerun of an older run is the same run, not "other settings"; offline negatives
# drawn before `exclude` existed avoided only the record's own items, so a rerun with today's "user" default stops).
ADDED_SETTINGS = {"decoding": "greedy", "load_in_4bit": False, "genre_weighting": False, "exclude": "record"}


def result_settings(args: dict) -> dict:
    """The result-changing part of a stage's arguments, within nested ones (the resolved recipe) too."""
    return {k: result_settings(v) if isinstance(v, dict) else v for k, v in args.items()
            if k not in NOT_RESULT_CHANGING}


def stage_settings(args: dict) -> dict:
    """What a stage's result depends on, as stored and compared: its result-changing arguments, paths made portable,
    and this process's threads and kernels (utils/numerics.py)."""
    from utils.numerics import numerics

    settings = json.loads(json.dumps(portable(result_settings(args)), default=str))  # as it would be stored
    return {**settings, "numerics": numerics()}


def flat_settings(settings: dict, prefix: str = "") -> dict:
    """Nested settings as {"resolved_recipe.sft.learning_rate": value, ...}, to name exactly what differs."""
    out = {}
    for k, v in settings.items():
        if isinstance(v, dict) and v:
            out.update(flat_settings(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def settings_hash(settings: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_config_path(directory, stage: str) -> Path:
    return Path(directory) / f"run_config_{stage}.json"


def settings_differences(directory, stage: str, args: dict, what: str = "") -> str:
    """How the settings recorded for `stage` in `directory` differ from these ("" when they are equal, or when none
    were recorded), as "name old -> new, ...". A run config from before recipe files or before threads and kernels
    were recorded cannot be matched: that stops with what to do."""
    path = run_config_path(directory, stage)
    if not path.is_file():
        return ""
    old = read_json(path).get("settings")
    if old is None:  # written before settings were recorded
        return ""
    new = stage_settings(args)
    if "resolved_recipe" in new and "resolved_recipe" not in old:
        raise UserError(f"{what or directory} was made before recipe files (its settings were options such as "
                        f"lr): finish that run with the version that started it, or set a new OUTPUT_ROOT")
    if "numerics" not in old:
        raise UserError(f"{what or directory} was made before threads and kernels were recorded, so its digits "
                        f"cannot be matched: finish that run with the version that started it, or set a new "
                        f"OUTPUT_ROOT")
    old = {**{k: v for k, v in ADDED_SETTINGS.items() if k in new}, **old}
    if old == new:
        return ""
    old, new = flat_settings(old), flat_settings(new)
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))


def check_same_settings(directory, stage: str, args: dict, what: str = "", redo: str = "") -> None:
    """A finished stage is reused only with the settings that made it: a rerun with others (a changed LR, BETA, SEED,
    BASE_MODEL...) stops with the differing values instead of silently mixing them into the run."""
    differences = settings_differences(directory, stage, args, what)
    if differences:
        redo = redo or f"delete {directory} (and the stages after it) to redo it"
        raise UserError(f"{what or directory} was made with other settings ({differences}): set a new OUTPUT_ROOT "
                        f"for the new settings, or {redo}")


def process_seconds() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere): a stage's whole cost, start-up included."""
    import time

    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        return round(time.time() - boot - start_ticks / os.sysconf("SC_CLK_TCK"), 1)
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def write_run_config(directory, stage: str, args: dict, extra: dict | None = None) -> None:
    """Record what produced a directory: the stage, its arguments (plus `extra` facts such as step counts), the
    result-changing settings (threads and kernels included) and their hash, versions, git commit, the machine, when
    it finished and how long its process had run by then (bench/iteration_budget.py reads the stages' times from
    these). No machine path is recorded (`portable`)."""
    import time

    from utils.numerics import environment

    settings = stage_settings(args)
    write_json(run_config_path(directory, stage),
               {"stage": stage, "args": portable({**args, **(extra or {})}), "settings": settings,
                "settings_hash": settings_hash(settings), "versions": versions(), "git_commit": git_commit(),
                "git_dirty": git_dirty(), "environment": environment(), "argv": portable(sys.argv),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "process_seconds": process_seconds()})
