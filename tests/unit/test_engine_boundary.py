"""The engine's boundary and layout.

The engine knows nothing of Airflow: every module outside ``include/privacy_requests/airflow/`` imports without
loading a single ``airflow`` module (checked in a fresh interpreter, where nothing was imported yet).

The engine keeps its shape: packages in layers (each imports only from the layers below it), no import cycle
between packages or modules, no private name imported from another module, no module over 400 lines. The rules
read the imports with ``ast`` (``TYPE_CHECKING`` imports included: a cycle there is still a cycle a reader must
untangle). Each checker is also fed a small broken example, so a rule that could never fail is seen.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import ROOT

ENGINE = ROOT / "include" / "privacy_requests"
MAX_LINES = 400
# Bottom to top; a package imports from its own package and from lower layers only. Packages in one layer do
# not import each other. ``errors`` is the one module at the top level: the exceptions every layer raises.
LAYERS: list[set[str]] = [
    {"errors"},
    {"model"},          # what the user describes: config, graph, policies, masking
    {"store"},          # the encrypted request store and its keys
    {"request"},        # one request: conf, lifecycle, clock, report, certificate
    {"connectors"},     # SQL (with preflight and proof), vendor, manual
    {"steps", "outbound"},  # collection steps; emails, digests, confirmations, webhooks
    {"deliverables"},   # access package, overview (what the UI shows), deadlines
    {"batch"},          # many subjects in one run
    {"drop"},           # California's DROP lists: hashing, files, matching, responses (feeds the batch)
    {"airflow"},        # the only Airflow wing
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


@dataclass(frozen=True)
class Import:
    importer: str   # privacy_requests.model.policy
    target: str     # the engine module imported from (or imported)
    name: str | None  # the name taken from it, None for ``import x`` or a whole module
    line: int


def module_name(path: Path) -> str:
    parts = ["privacy_requests", *path.relative_to(ENGINE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_files() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def engine_imports(files: dict[str, Path]) -> list[Import]:
    found = []
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = (node.module or "").removeprefix("include.")
                if source.split(".")[0] != "privacy_requests":
                    continue
                for alias in node.names:
                    if f"{source}.{alias.name}" in files:
                        found.append(Import(module, f"{source}.{alias.name}", None, node.lineno))
                    else:
                        found.append(Import(module, source, alias.name, node.lineno))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name.removeprefix("include.")
                    if name.split(".")[0] == "privacy_requests":
                        found.append(Import(module, name, None, node.lineno))
    return found


def package_of(module: str) -> str | None:
    """``privacy_requests.model.policy`` -> ``model``; ``privacy_requests.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(imports: Iterable[Import]) -> list[str]:
    problems = []
    for imp in imports:
        mine, theirs = package_of(imp.importer), package_of(imp.target)
        if mine is None or theirs is None or mine == theirs:
            continue
        if mine not in RANK or theirs not in RANK:
            problems.append(f"{imp.importer}:{imp.line} {mine} or {theirs} is in no layer (add it to LAYERS)")
        elif RANK[theirs] >= RANK[mine]:
            problems.append(f"{imp.importer}:{imp.line} imports {imp.target} ({theirs} is not below {mine})")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one node (or a node importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def module_edges(imports: Iterable[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.importer and not imp.importer.startswith(imp.target + "."):
            edges.setdefault(imp.importer, set()).add(imp.target)
    return edges


def package_edges(imports: Iterable[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in imports:
        mine, theirs = package_of(imp.importer), package_of(imp.target)
        if mine and theirs and mine != theirs:
            edges.setdefault(mine, set()).add(theirs)
    return edges


def private_imports(imports: Iterable[Import]) -> list[str]:
    return [f"{imp.importer}:{imp.line} imports {imp.name} from {imp.target}" for imp in imports
            if imp.name and imp.name.startswith("_") and imp.target != imp.importer]


def long_modules(files: dict[str, Path]) -> list[str]:
    return [f"{module}: {n} lines" for module, path in files.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES]


FILES = engine_files()
IMPORTS = engine_imports(FILES)


def test_the_reader_sees_the_whole_engine() -> None:
    assert len(FILES) > 50
    assert any(i.importer == "privacy_requests.request.statutory_clock" and i.target == "privacy_requests.model.dates"
               for i in IMPORTS)


def test_every_package_is_in_a_layer_and_holds_modules() -> None:
    packages = {package_of(m) for m in FILES if package_of(m)}
    assert packages == set(RANK)
    top_level = {m for m, p in FILES.items() if p.parent == ENGINE and p.name != "__init__.py"}
    assert top_level == {"privacy_requests.errors"}, "new modules go into the package of what they do"


@pytest.mark.parametrize("package", sorted(RANK))
def test_a_package_imports_only_from_the_layers_below_it(package: str) -> None:
    assert layer_violations(i for i in IMPORTS if package_of(i.importer) == package) == []


def test_model_imports_nothing_but_errors() -> None:
    assert {package_of(i.target) for i in IMPORTS if package_of(i.importer) == "model"} <= {"model", "errors"}


def test_no_engine_package_imports_the_airflow_wing() -> None:
    assert [i for i in IMPORTS if package_of(i.importer) != "airflow" and package_of(i.target) == "airflow"] == []


def test_no_import_cycle_between_packages() -> None:
    assert cycles(package_edges(IMPORTS)) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(module_edges(IMPORTS)) == []


def test_no_private_name_is_imported_from_another_module() -> None:
    assert private_imports(IMPORTS) == []


def test_no_engine_module_is_over_400_lines() -> None:
    assert long_modules(FILES) == []


# The checkers on broken examples: each rule above fails when its rule is broken.

def test_the_layer_check_sees_an_import_upwards() -> None:
    upwards = Import("privacy_requests.model.policy", "privacy_requests.request.statutory_clock", "x", 1)
    sideways = Import("privacy_requests.steps.collection_steps", "privacy_requests.outbound.webhooks", "y", 2)
    downwards = Import("privacy_requests.request.lifecycle", "privacy_requests.model.graph", "z", 3)
    assert len(layer_violations([upwards, sideways, downwards])) == 2


def test_the_cycle_check_sees_a_cycle() -> None:
    imports = [Import("privacy_requests.model.policy", "privacy_requests.request.statutory_clock", "a", 1),
               Import("privacy_requests.request.statutory_clock", "privacy_requests.model.policy", "b", 1),
               Import("privacy_requests.request.report", "privacy_requests.model.graph", "c", 1)]
    assert cycles(module_edges(imports)) == [["privacy_requests.model.policy",
                                              "privacy_requests.request.statutory_clock"]]
    assert cycles(package_edges(imports)) == [["model", "request"]]


def test_the_private_check_sees_a_private_import() -> None:
    imports = [Import("privacy_requests.connectors.preflight", "privacy_requests.connectors.sql", "_classify", 1),
               Import("privacy_requests.connectors.preflight", "privacy_requests.connectors.sql", "written", 1)]
    assert private_imports(imports) == ["privacy_requests.connectors.preflight:1 imports _classify from "
                                        "privacy_requests.connectors.sql"]


def test_the_length_check_sees_a_long_module(tmp_path: Path) -> None:
    long, short = tmp_path / "long.py", tmp_path / "short.py"
    long.write_text("x = 1\n" * (MAX_LINES + 1))
    short.write_text("x = 1\n" * MAX_LINES)
    assert long_modules({"long": long, "short": short}) == [f"long: {MAX_LINES + 1} lines"]


def test_the_reader_resolves_relative_imports() -> None:
    """The reader's view of ``from ..store import layout`` and ``from .graph import X`` is the module's."""
    found = {(i.target, i.name) for i in IMPORTS if i.importer == "privacy_requests.request.lifecycle"}
    assert ("privacy_requests.store.layout", None) in found
    assert ("privacy_requests.request.asking", "Answer") in found


def engine_modules() -> list[str]:
    modules = []
    for path in sorted(ENGINE.rglob("*.py")):
        relative = path.relative_to(ENGINE)
        if relative.parts[0] == "airflow":
            continue
        parts = ["include", "privacy_requests", *relative.with_suffix("").parts]
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_no_engine_module_imports_airflow() -> None:
    modules = engine_modules()
    assert len(modules) > 20  # the whole engine, not an empty list
    probe = ("import importlib, json, sys\n"
             f"for name in {modules!r}:\n"
             "    importlib.import_module(name)\n"
             "print(json.dumps(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert json.loads(result.stdout) == []


def test_the_wing_does_import_airflow(tmp_path: Path) -> None:
    """The probe above can see an Airflow import: the wing's DAG factory makes one."""
    probe = ("import sys, include.privacy_requests.airflow.dag_factory\n"
             "print('airflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AIRFLOW_HOME": str(tmp_path)})
    assert result.stdout.strip() == "True"
