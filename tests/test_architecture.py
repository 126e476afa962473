"""The house rules of docs/architecture.md, checked on the code's own imports (every import statement, local ones too).

- no import circle among the package's modules;
- the engine imports nothing from the rooms built on it or beside it (``quals.corpus``, ``quals.recipe``), nor the
  command line, the flags helper or the dev tools;
- ``quals.corpus`` and ``quals.recipe`` do not import each other;
- no production module imports the test kit (``quals.testing``, ``trainer_ext.testing``);
- benchmarks use public names only: ``quals`` (its ``__all__``), ``quals.recipe`` (its ``__all__``), the test kit,
  and the command line's ``main``;
- the evaluate module and the demo import no engine module other than ``quals`` itself (the demo none at all).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quals
import quals.recipe


ROOT = Path(__file__).resolve().parent.parent
DEV_TOOLS = {"quals.testing", "quals.card", "trainer_ext.testing"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every ``import`` / ``from ... import`` in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def package_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from a import b`` counts ``a.b`` when that is a module)."""
    files = {module_name(p): p for folder in ("quals", "trainer_ext") for p in (ROOT / folder).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        edges = set()
        for module, names in imports_of(path):
            if module.split(".")[0] in ("quals", "trainer_ext"):
                submodules = {f"{module}.{n}" for n in names} & files.keys()
                edges |= submodules or {module}
        graph[name] = {e for e in edges if e in files and e != name}
    return graph


GRAPH = package_graph()


def test_no_import_circles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize(("room", "forbidden"), [
    ("quals.engine", ("quals.corpus", "quals.recipe", "quals.cli", "quals.flags", "quals.hub", *DEV_TOOLS)),
    ("quals.corpus", ("quals.recipe", *DEV_TOOLS)),
    ("quals.recipe", ("quals.corpus", *DEV_TOOLS)),
    ("trainer_ext", ("quals.corpus", "quals.recipe", "quals.testing")),
    ("quals.cli", DEV_TOOLS),
])
def test_rooms_import_only_downward(room, forbidden):
    for module, targets in GRAPH.items():
        if (module == room or module.startswith(room + ".")) and module not in DEV_TOOLS:
            bad = sorted(t for t in targets if any(t == f or t.startswith(f + ".") for f in forbidden))
            assert not bad, f"{module} imports {bad}"


def test_benchmarks_use_public_names_only():
    public = {"quals": set(quals.__all__), "quals.recipe": set(quals.recipe.__all__), "quals.cli": {"main"}}
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for module, names in imports_of(path):
            if module.split(".")[0] != "quals":
                continue
            if module == "quals.testing":
                assert not [n for n in names if n.startswith("_")], f"{path.name}: private test-kit names {names}"
                continue
            assert module in public, f"{path.name} imports from {module}; use the public names of quals"
            assert set(names) <= public[module], f"{path.name}: {sorted(set(names) - public[module])} not public"


def test_the_metric_and_its_demo_use_the_public_package_only():
    metric = imports_of(ROOT / "metrics" / "quals" / "quals.py")
    assert not [m for m, _ in metric if m.startswith("quals.")]
    demo = imports_of(ROOT / "metrics" / "quals" / "app.py")
    assert not [m for m, _ in demo if m.split(".")[0] == "quals"]  # the demo builds on the metric's output
