"""Small I/O helpers every stage shares: atomic writes, stage markers, run configs, clear failures.

A stage writes its outputs under a temporary name and renames them into place last, so a crash never leaves a
half-written file or directory that a rerun would mistake for a finished stage.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DONE = "DONE"  # marker file written last inside a finished stage directory
_UMASK = os.umask(0)
os.umask(_UMASK)


class UserError(Exception):
    """A problem with the user's input or environment: printed as one line, exit code 2, no traceback."""


def first_line(e: Exception) -> str:
    """The first non-empty line of an exception's message (library errors can run to pages)."""
    return next((x.strip() for x in str(e).splitlines() if x.strip()), type(e).__name__)


def fail(message: str, code: int = 2):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def comma_list(value, flag: str) -> list[str]:
    """A list-valued CLI argument from the shell: "a,b" arrives from fire as the tuple ('a', 'b'), "a" as a string."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    items = [str(x).strip() for x in items if str(x).strip()]
    if not items:
        raise UserError(f"{flag} is empty: give one or more comma-separated values")
    return items


def check_cli_args(fn, argv: list[str]) -> None:
    """Only `--name value` (or `--name=value`, or a bare `--name` for a boolean) for names `fn` takes: fire would give a
    stray value to the next parameter (`--topk 1 5` makes 5 a path) and pass an unknown flag on as text."""
    import inspect

    params = inspect.signature(fn).parameters
    flags = sorted(f"--{name}" for name in params)
    usage = f"expected --name value for each of {', '.join(flags)} (see --help)"
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise UserError(f"unexpected argument {token!r}: {usage}")
        name, has_value = token[2:].split("=", 1)[0].replace("-", "_"), "=" in token
        if name not in params:
            raise UserError(f"unknown option {token.split('=', 1)[0]}: {usage}")
        is_bool = params[name].annotation is bool
        if not has_value and not (is_bool and (i + 1 == len(argv) or argv[i + 1].startswith("--"))):
            if i + 1 == len(argv):
                raise UserError(f"option --{name} needs a value: {usage}")
            i += 1  # its value
        i += 1


def cli_help(fn) -> str:
    """An entry point's --help: its module's docstring (the usage line first), then every option in the one form
    the CLI accepts (--name value) with its default."""
    import inspect

    doc = (fn.__globals__.get("__doc__") or "").strip()
    options = [f"  --{name} {'VALUE (required)' if p.default is p.empty else f'(default: {p.default!r})'}"
               for name, p in inspect.signature(fn).parameters.items()]
    return f"{doc}\n\noptions, each as --name value (a boolean may be a bare --name):\n" + "\n".join(options)


def run_cli(fn):
    """Run a fire CLI entry point with strict arguments (`check_cli_args`) and our own --help (`cli_help`: fire's
    lists required options as positional, which `check_cli_args` refuses); a UserError becomes one clear line and a
    non-zero exit."""
    import fire

    argv = sys.argv[1:]
    if any(a in ("--help", "-h") for a in argv):
        print(cli_help(fn))
        sys.exit(0)
    try:
        check_cli_args(fn, argv)
        fire.Fire(fn)
    except UserError as e:
        fail(str(e))


def check_output_dir(path) -> Path:
    """Fail before any work when `path` cannot become a directory (e.g. a parent is a file); creates nothing."""
    path = Path(path)
    p = path
    while not p.exists() and p != p.parent:  # the nearest existing ancestor
        p = p.parent
    if not p.is_dir():
        raise UserError(f"cannot create {path}: {p} is not a directory; choose another output path")
    if not os.access(p, os.W_OK):
        raise UserError(f"cannot create {path}: {p} is not writable; choose another output path")
    return path


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)  # never leave a half-written file behind
        if isinstance(e, OSError):  # disk full, quota, I/O error: one line, not a traceback
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def write_json(path, obj, indent=2) -> None:
    _atomic_write(path, lambda f: (json.dump(obj, f, ensure_ascii=False, indent=indent), f.write("\n")))


def write_jsonl(path, records) -> None:
    _atomic_write(path, lambda f: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_text(path, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text))


def read_text(path, missing: str = "") -> str:
    """A UTF-8 file's text; a missing or undecodable file is one clear line (`missing`: a hint on what to do)."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found" + (f" ({missing})" if missing else "")) from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path):
    path = Path(path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None


def parse_jsonl(text: str, path) -> list[tuple[int, object]]:
    """JSON Lines: (line number, value) for each non-blank line, so that later checks can name the line; a line that
    is not JSON is named by its number."""
    values = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: malformed JSON at line {lineno}: {e.msg}") from None
    return values


def read_jsonl(path, missing: str = "") -> list[tuple[int, object]]:
    """The one JSON Lines reader (self-play pairs, a JSON Lines split): parse_jsonl of the file's text."""
    return parse_jsonl(read_text(path, missing), path)


# ---------------------------------------------------------------------------------------------------- stages
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
