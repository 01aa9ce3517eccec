"""Shared fixtures: the real ML-100K category (built once if missing) and a freshly built small model; and an entry
point run in-process, as `python -m module` runs it (no interpreter start per bad-input case)."""
import ast
import contextlib
import importlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ml100k() -> Path:
    """data/ML100K, prepared from the recbole wheel the first time (the demo's own data)."""
    d = ROOT / "data" / "ML100K"
    if not (d / "DONE").is_file():
        subprocess.run([sys.executable, "-m", "data.prepare", "ml-100k"], cwd=ROOT, check=True)
    return d


@pytest.fixture(scope="session")
def tiny_model(ml100k, tmp_path_factory) -> Path:
    """An untrained embedded-style model for ML100K (small vocabulary so it builds in seconds)."""
    from utils.tiny_model import Args, build

    out = tmp_path_factory.mktemp("tiny") / "model"
    build(Args(category="ML100K", out=str(out), vocab_size=1024, hidden=64, layers=2, heads=2, corpus_records=500))
    return out


def entry_function(module: str):
    """The function a module's `if __name__ == "__main__": run_cli(fn)` runs (read from its source)."""
    mod = importlib.import_module(module)
    tree = ast.parse(Path(mod.__file__).read_text())
    (name,) = [c.args[0].id for c in ast.walk(tree)
               if isinstance(c, ast.Call) and getattr(c.func, "id", "") == "run_cli"]
    return getattr(mod, name)


def run_module(module: str, *argv) -> subprocess.CompletedProcess:
    """`python -m module argv...` in this process: its exit code, stdout and stderr. A traceback is not caught: it
    fails the test, as it would the command."""
    from utils.cli import run_cli

    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.argv
    sys.argv = [module, *map(str, argv)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run_cli(entry_function(module))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = saved
    return subprocess.CompletedProcess([module, *argv], code, out.getvalue(), err.getvalue())
