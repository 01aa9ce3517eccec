"""Files: atomic writes (a crash never leaves a half-written file), readers that name the file and line of bad input,
and the one error type for a user's input, printed as one line (utils/cli.py).
"""
import json
import os
import sys
import tempfile
from pathlib import Path

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


def user_cache(name: str) -> Path:
    """A file of this project's per-user cache, ~/.cache/sprec (or $XDG_CACHE_HOME/sprec): answers that are slow to
    compute and the same for every run of an environment (utils/recipe.py's config fields, utils/numerics.py)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sprec" / name


def read_cache(path, default=None):
    """A cache file's JSON, or `default` when it is missing or unreadable (a cache is rebuilt, never an error)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def write_cache(path, obj) -> None:
    """Write a cache file atomically; where it cannot be written (a read-only home), things are only slower."""
    try:
        write_json(path, obj)
    except UserError:
        pass


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
