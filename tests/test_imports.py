"""The repository's structure: its modules import each other without a cycle, imports inside functions counted (a
function-local import hides a cycle from Python's start-up, not from the design: who builds on whom); and no function
takes more than 8 parameters (options travel as one checked object, not a dozen positional values)."""
import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("utils", "train", "eval", "data", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the repository modules it imports anywhere in its file, at the top or inside a function}."""
    files = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).glob("*.py"))}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from eval import evaluate` imports the module eval.evaluate; `from utils.io import x` utils.io
                targets.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files
                               else node.module for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_finder_sees_a_cycle_through_a_function_local_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_imports_inside_functions():
    graph = import_graph()
    assert "utils.provenance" in graph["utils.stage"]  # at the top
    assert "utils.device" in graph["utils.numerics"]  # only inside a function
    assert "eval.evaluate" in graph["eval.inference"]  # `from eval import evaluate`, inside a function


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (imports inside functions counted): " + "; ".join(" <-> ".join(c) for c in found)


def test_no_function_takes_more_than_8_parameters():
    wide = []
    for package in ("utils", "train", "eval", "data"):
        for path in sorted((ROOT / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    a = node.args
                    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x]
                    n = len([x for x in names if x not in ("self", "cls")])
                    where = f"{path.relative_to(ROOT).as_posix()}:{node.name}"
                    if n > 8:
                        wide.append(f"{where} ({n})")
    assert not wide, "functions with more than 8 parameters: " + ", ".join(wide)
