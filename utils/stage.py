"""One training stage's life, shared by train/sft.py, train/dpo.py and train/self_play.py.

    stage = Stage("sft", output_dir, args, what="the SFT stage")
    if stage.skip():                  # finished before with the same settings (other settings: a clear error)
        return
    ...checks, data, model; trl's config writes to stage.partial...
    stage.begin()                     # a fresh partial directory, every process past the barrier
    ...train, save into stage.partial...
    stage.finish(facts, "wrote ...")  # run config, DONE, the atomic rename, the message, the closing barrier

Only the main process writes; every process calls each method, so the barriers line up. A crash leaves only
`<dir>.partial`, which the next attempt starts afresh; the finished directory appears in one rename.
Below the class: the stage markers, and the run config every stage, evaluation and build writes and compares on a
rerun (its result-changing settings, without machine paths).
"""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from utils.io import UserError, read_json, write_json, write_text

DONE = "DONE"  # marker file written last inside a finished stage directory


class Stage:
    def __init__(self, name: str, output_dir, args: dict, what: str, tag: str = ""):
        self.name, self.out, self.args, self.what = name, Path(output_dir), args, what
        self.tag = tag or name
        self.partial = partial_dir(self.out)
        self._state = None

    @property
    def state(self):
        """accelerate's process state, made on first use: a finished stage skips without importing torch."""
        if self._state is None:
            from utils.device import process_state

            self._state = process_state()
        return self._state

    @property
    def is_main(self) -> bool:
        """The main process (rank 0 of the launch; torchrun's RANK until accelerate is asked)."""
        from utils.device import launched_as_main

        return self._state.is_main_process if self._state is not None else launched_as_main()

    def say(self, message: str) -> None:
        """Print on the main process only, prefixed with the stage's tag."""
        if self.is_main:
            print(f"[{self.tag}] {message}", flush=True)

    def skip(self) -> bool:
        """True when the stage is finished: its settings must equal these (check_same_settings stops otherwise)."""
        if not is_done(self.out):
            return False
        check_same_settings(self.out, self.name, self.args, f"{self.what} {self.out}")
        self.say(f"{self.out} is complete; skipping")
        return True

    def begin(self) -> Path:
        """A fresh partial directory (a crashed attempt's leftovers removed), then every process waits for it."""
        if self.is_main:
            start_stage(self.out)
        self.state.wait_for_everyone()
        return self.partial

    def finish(self, facts: dict | None = None, message: str = "") -> None:
        """Record the run config (the arguments plus `facts`), mark the stage done and move it into place; then
        every process waits, so none goes on before the directory exists."""
        if self.is_main:
            write_run_config(self.partial, self.name, self.args, facts)
            finish_stage(self.out)
            self.say(message or f"wrote {self.out}")
        self.state.wait_for_everyone()

    def stand_by(self) -> None:
        """For a process with no part in what the stage writes (self-play's helpers once their share is generated):
        pass the barriers of `begin` and `finish` while the main process writes."""
        self.begin()
        self.finish()


# ---------------------------------------------------------------------------------------------------- markers
def is_done(stage_dir) -> bool:
    return (Path(stage_dir) / DONE).is_file()


def partial_dir(stage_dir) -> Path:
    """Where a stage writes before it is complete; renamed to `stage_dir` by `finish_stage`."""
    stage_dir = Path(stage_dir)
    return stage_dir.with_name(stage_dir.name + ".partial")


def start_stage(stage_dir) -> Path:
    """Fresh partial directory for a stage (leftovers of a crashed attempt are removed)."""
    tmp = partial_dir(stage_dir)
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"cannot create {tmp}: {e.strerror}") from None
    return tmp


def finish_stage(stage_dir) -> Path:
    """Mark the partial directory complete and move it into place atomically."""
    stage_dir = Path(stage_dir)
    tmp = partial_dir(stage_dir)
    write_text(tmp / DONE, "")
    if stage_dir.exists():  # an incomplete directory left by something else: replace it
        shutil.rmtree(stage_dir)
    os.replace(tmp, stage_dir)
    return stage_dir


# ---------------------------------------------------------------------------------------------- run config
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


def check_same_settings(directory, stage: str, args: dict, what: str = "", redo: str = "") -> None:
    """A finished stage is reused only with the settings that made it: a rerun with others (a changed LR, BETA, SEED,
    BASE_MODEL...) stops with the differing values instead of silently mixing them into the run."""
    path = Path(directory) / f"run_config_{stage}.json"
    if not path.is_file():
        return
    old = read_json(path).get("settings")
    if old is None:  # written before settings were recorded
        return
    new = stage_settings(args)
    if "resolved_recipe" in new and "resolved_recipe" not in old:
        raise UserError(f"{what or directory} was made before recipe files (its settings were options such as "
                        f"lr): finish that run with the version that started it, or set a new OUTPUT_ROOT")
    if "numerics" not in old:
        raise UserError(f"{what or directory} was made before threads and kernels were recorded, so its digits "
                        f"cannot be matched: finish that run with the version that started it, or set a new "
                        f"OUTPUT_ROOT")
    old = {**{k: v for k, v in ADDED_SETTINGS.items() if k in new}, **old}
    if old != new:
        old, new = flat_settings(old), flat_settings(new)
        diff = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                         if old.get(k) != new.get(k))
        redo = redo or f"delete {directory} (and the stages after it) to redo it"
        raise UserError(f"{what or directory} was made with other settings ({diff}): set a new OUTPUT_ROOT for "
                        f"the new settings, or {redo}")


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
    write_json(Path(directory) / f"run_config_{stage}.json",
               {"stage": stage, "args": portable({**args, **(extra or {})}), "settings": settings,
                "settings_hash": settings_hash(settings), "versions": versions(), "git_commit": git_commit(),
                "git_dirty": git_dirty(), "environment": environment(), "argv": portable(sys.argv),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "process_seconds": process_seconds()})
