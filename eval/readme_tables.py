"""The result tables of the README and the docs, generated from the reports they cite, so that the two cannot drift
apart.

usage: python -m eval.readme_tables [--readme FILE] [--check]
A table between the lines
    <!-- table from results/demo/ML100K_results.md; columns: HR@1, HR@5, NDCG@5 -->
    <!-- end table -->
is rebuilt from the first table of that report (eval/report.py's output) that has every named column (and every
named row): the named columns with the report's own headers, every row with the report's own labels, in its order
(`; rows: SFT, SPRec it1 DPO` keeps only those, from the first table that has them all; a label holding ", " is read
whole). The path is relative to the file the table is in (docs/*.md: `../results/...`). Every such table of README.md
and of each docs/*.md is rebuilt, or only those of `--readme FILE`. Without --check the files are rewritten in place;
with --check nothing is written and the exit status is 1 if a table differs from its report (tests/test_readme_tables.py
runs it on the real files).
"""
import re
from pathlib import Path

from utils.cli import run_cli
from utils.io import UserError, fail, write_text

ROOT = Path(__file__).resolve().parents[1]
START = re.compile(r"^<!-- table from (?P<path>\S+); columns: (?P<columns>[^;]+?)(?:; rows: (?P<rows>.+?))? -->$")
END = "<!-- end table -->"


def read_tables(path: Path) -> list[tuple[list[str], list[list[str]]]]:
    """(the header cells, the rows) of every markdown table in `path`, in order."""
    if not path.is_file():
        raise UserError(f"{path}: no such report")
    tables, block = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            tables.append((block[0], block[2:]))
            block = []
    if not tables:
        raise UserError(f"{path}: no table")
    return tables


def _plain(header: list[str]) -> list[str]:
    return [re.sub(r"\s*[↑↓]$", "", h) for h in header]


def split_rows(text: str, labels) -> list[str]:
    """The row labels named in `text`, separated by commas; a label that holds ", " itself ("SFT, constrained", the
    report's greedy-against-constrained rows) is read whole when the table has it."""
    out, current = [], ""
    for piece in text.split(","):
        current = f"{current},{piece}" if current else piece
        if current.strip() in labels:
            out.append(current.strip())
            current = ""
    return out + ([p.strip() for p in current.split(",")] if current else [])


def render(report: Path, columns: list[str], rows: str | None) -> list[str]:
    """The markdown lines of one generated table made from `report`: from its first table with every named column and,
    where rows are named, every named row."""
    tables = read_tables(report)
    candidates = [t for t in tables if all(c in _plain(t[0]) for c in columns)] or tables[:1]
    labels = [{b[0] for b in body} for _, body in candidates]
    named = [None if rows is None else split_rows(rows, have) for have in labels]
    pick = next((i for i, have in enumerate(labels) if named[i] is None or set(named[i]) <= have), 0)
    (header, body), rows = candidates[pick], named[pick]
    plain = _plain(header)
    missing = [c for c in columns if c not in plain]
    if missing:
        raise UserError(f"{report}: no column {', '.join(missing)} in any one table (the first has "
                        f"{', '.join(plain[1:])})")
    by_label = {r[0]: r for r in body}
    if rows is not None and (absent := [r for r in rows if r not in by_label]):
        raise UserError(f"{report}: no row {', '.join(absent)}")
    chosen = [by_label[r] for r in rows] if rows is not None else body
    index = [plain.index(c) for c in columns]
    out = ["| " + " | ".join([header[0]] + [header[i] for i in index]) + " |",
           "|---|" + "---:|" * len(index)]
    out += ["| " + " | ".join([r[0]] + [r[i] for i in index]) + " |" for r in chosen]
    return out


def regenerate(text: str, base: Path) -> tuple[str, list[str]]:
    """(the text with every marked table rebuilt, the reports whose tables changed); `base`: the text's directory."""
    lines, out, changed, i = text.splitlines(), [], [], 0
    while i < len(lines):
        out.append(lines[i])
        m = START.match(lines[i])
        i += 1
        if not m:
            continue
        end = next((j for j in range(i, len(lines)) if lines[j] == END), None)
        if end is None:
            raise UserError(f"line {i}: '{lines[i - 1]}' has no '{END}' after it")
        table = render(base / m["path"], [c.strip() for c in m["columns"].split(",")], m["rows"] or None)
        if lines[i:end] != table:
            changed.append(m["path"])
        out += table
        i = end
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), changed


def documents() -> list[Path]:
    """README.md and every docs/*.md of the repository."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def run(readme: str = "", check: bool = False):
    paths = [Path(readme)] if readme else documents()
    stale = []
    for path in paths:
        if not path.is_file():
            raise UserError(f"--readme {readme}: no such file")
        text, changed = regenerate(path.read_text(encoding="utf-8"), path.parent)
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if check:
            stale += [f"{name} ({', '.join(changed)})"] if changed else []
        elif changed:
            write_text(path, text)
            print(f"{name}: rebuilt the tables from {', '.join(changed)}")
    if check:
        if stale:
            fail(f"tables differ from their reports in {'; '.join(stale)}: run python -m eval.readme_tables", code=1)
        print(f"every generated table of {len(paths)} file(s) matches its report")


if __name__ == "__main__":
    run_cli(run)
