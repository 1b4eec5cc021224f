"""The shape of the code: no import cycles inside harness/, and no module past about 500 lines.

Imports are read with `ast`, including those inside functions (a lazy import hides a cycle, it
does not remove it) and those under `if TYPE_CHECKING:` (they never run, but a reader still has to
know both modules to read either).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"
MAX_LINES = 550  # "about 500"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The harness modules that `path` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from harness import data`
    return {name for name in found if name in modules}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    edges = {name: imports(path, modules) - {name} for name, path in files.items()}
    # `import harness.a.b` also runs harness/__init__ and harness/a/__init__: those are not cycles of design.
    return {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in edges.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_harness_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_imports_the_command_line():
    importers = sorted(
        name for name, targets in graph().items() if "harness.cli" in targets and name != "harness.__main__"
    )
    assert importers == []


def test_no_module_is_over_about_500_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_readmes_layout_names_every_module_and_package():
    """The README's Layout is where a newcomer looks first: a module added without a line there fails."""
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    named = {token.strip("(),:;") for line in layout.splitlines() for token in line.split()}
    missing = []
    for folder in (PACKAGE, PACKAGE / "organizer", PACKAGE / "runners"):
        for path in sorted(folder.iterdir()):
            if path.name.startswith("_"):
                continue
            if path.suffix == ".py" and path.name not in named:
                missing.append(str(path.relative_to(ROOT)))
            elif (path / "__init__.py").is_file() and f"{path.name}/" not in named:
                missing.append(f"{path.relative_to(ROOT)}/")
    assert missing == [], "not in the README's Layout"
