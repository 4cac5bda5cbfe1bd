"""The shape of the code: dependencies point one way, no import cycles, the CLI stays thin, and
docs/architecture.md lists the modules there are."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"iotask": ROOT / "iotask", "iotask.connectors": ROOT / "connectors",
           "iotask.migrations": ROOT / "migrations"}
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def project_modules() -> dict[str, Path]:
    """Every module of the installed package, by its dotted name (iotask.connectors.csv...)."""
    modules = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


MODULES = project_modules()


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str) -> set[str]:
    """The project modules ``name`` imports at run time (imports for type checkers only left
    out), lazy imports inside functions included."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def test_the_module_list_is_read():
    assert {"iotask.runner", "iotask.cli", "iotask.connectors.base", "iotask.dataflow",
            "iotask.claims", "iotask.connectors.transports.sftp"} <= set(MODULES)
    assert "iotask.connectors.context" in GRAPH["iotask.connectors.base"]


def test_connectors_import_nothing_of_the_runner_side():
    """A connector sees the connector package only: never the runner, the CLI, the web side, the
    data flow, nor the iotask database helpers."""
    for name, imported in GRAPH.items():
        if name.startswith("iotask.connectors"):
            outside = {m for m in imported if not m.startswith("iotask.connectors")}
            assert not outside, f"{name} imports {sorted(outside)}"


def test_the_cli_reaches_connectors_only_through_the_runner_side():
    for name, imported in GRAPH.items():
        if name == "iotask.cli" or name.startswith("iotask.cli."):
            wrong = {m for m in imported
                     if m.startswith("iotask.connectors") or m == "iotask.dataflow"}
            assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_web_side_reaches_connectors_only_through_the_runner_side():
    """The web side is a level beside the CLI: the runner side, never the connectors, the data
    flow or the CLI."""
    web = {name for name in GRAPH if name == "iotask.web" or name.startswith("iotask.web.")}
    assert {"iotask.web", "iotask.web.rundue"} <= web
    for name in web:
        wrong = {m for m in GRAPH[name] if m.startswith(("iotask.connectors", "iotask.cli"))
                 or m == "iotask.dataflow"}
        assert not wrong, f"{name} imports {sorted(wrong)}"


def test_no_import_cycles():
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target] if target in path else [name, target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_cli_modules_stay_small():
    for name, path in MODULES.items():
        if name.startswith("iotask.cli"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            assert lines <= 320, f"{path.relative_to(ROOT)} has {lines} lines: split it"


def test_architecture_doc_lists_every_module():
    """Each module appears in the doc's module table as `folder/file.py`, and the table names
    no module that is gone."""
    listed = set(re.findall(r"^\| `([\w/]+\.py)`", ARCHITECTURE.read_text(encoding="utf-8"),
                            flags=re.M))
    actual = {str(path.relative_to(ROOT)) for path in MODULES.values()
              if "versions" not in path.parts}
    assert listed == actual, (f"missing from docs/architecture.md: {sorted(actual - listed)}; "
                              f"listed but gone: {sorted(listed - actual)}")
