"""README.md and docs/*.md: every repository path they name exists, every link's anchor is a heading of its page, and
every `python -m` module of the repository they name answers --help (in this process, one module after another)."""
import contextlib
import io
import re
import runpy
import sys

import pytest
from conftest import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("shell", "utils", "eval", "train", "docs", "results", "recipes", "bench", "tests", "figs", "data")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
PATH = re.compile(rf"(?<![\w./~$-])((?:{'|'.join(TOP)})/[\w./+-]*)")
# Where a command writes (it need not exist before it runs) and the data a run prepares (not in the repository).
WRITES = re.compile(r"(?:FIGS_DIR=|OUTPUT_ROOT=|RUNS_ROOT=|--figs_dir |--out |--out_root |--output_dir )$")
GENERATED = ("data/ML100K",)
MODULE = re.compile(r"python -m ((?:eval|utils|data|bench|train)\.[\w.]+)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


def named_paths(text: str):
    """The repository paths in a document's code (spans and blocks), relative to the repository root."""
    for code in CODE.findall(text):
        for m in PATH.finditer(code):
            path = m.group(1).rstrip(".,;:")
            if (WRITES.search(code[:m.start()]) or code[m.end():m.end() + 1] in ("*", "<", "{", "$")
                    or path.startswith(GENERATED)):
                continue
            yield path


def exists(path: str) -> bool:
    """A repository path, or a module's attribute named after it (`utils/stage.Stage`: utils/stage.py)."""
    module = re.fullmatch(r"(.+)\.\w+", path)
    return (ROOT / path).exists() or bool(module and (ROOT / f"{module[1]}.py").is_file())


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_path_and_link_a_document_names_exists(document):
    text = document.read_text(encoding="utf-8")
    missing = [p for p in named_paths(text) if not exists(p)]
    for target in LINK.findall(CODE.sub("", text)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        linked = (document.parent / file).resolve() if file else document
        if not linked.exists():
            missing.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            missing.append(f"{target} (no such heading)")
    assert not missing, f"{document.relative_to(ROOT)} names what does not exist: {missing}"


def test_every_module_a_document_names_answers_help(monkeypatch):
    modules = sorted({m for d in DOCUMENTS for m in MODULE.findall(d.read_text(encoding="utf-8"))})
    assert "eval.stats" in modules and "data.prepare" in modules
    silent = []
    for module in modules:
        monkeypatch.setattr(sys, "argv", [module, "--help"])
        monkeypatch.delitem(sys.modules, module, raising=False)  # run as __main__, not beside an imported copy
        out, code = io.StringIO(), "no exit"
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except SystemExit as e:
                code = e.code or 0
        if code != 0 or "usage" not in out.getvalue().lower():
            silent.append(f"{module} ({code})")
    assert not silent, f"these modules do not answer --help: {silent}"
