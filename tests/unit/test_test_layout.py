"""The tests' own layout: shared helpers live in tests/support, and no test module imports another test module
or a conftest (a fixture or helper borrowed from another module breaks when that module changes, and pytest's
importlib mode may load a second copy of it)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
# Where the helpers that test modules used to import from went (for branches written before the move).
MOVED = {
    "tests.conftest": "tests.support.paths (ROOT, DEMO_CONFIG)",
    "tests.outbox": "tests.support.outbox",
    "tests.http_remote": "tests.support.http_remote",
    "tests.s3_server": "tests.support.s3_server",
    "tests.dag.conftest": "tests.support.smtp (SmtpServer, Received), tests.support.ports (free_port), "
                          "tests.support.dag_runs (table, task_states, ConfigFolder); its fixtures are everywhere",
    "tests.dag.af_helpers": "tests.support.dag_runs (clear, resume)",
    "tests.dag.equivalence": "tests.support.equivalence",
    "tests.dag.test_dag_integrity": "tests.support.dag_runs (dagbag)",
    "tests.unit.test_config": "tests.support.config_files (edit, find, problems_of)",
    "tests.integration.conftest": "tests.support.databases",
    "tests.integration.test_dag_on_servers": "tests.support.databases (airflow_uri, load_seed, rows)",
    "tests.e2e.conftest": "tests.support.cluster (airflow_world)",
    "tests.e2e.test_faults": "tests.support.faults",
    "tests.e2e.test_human_steps": "tests.support.cluster (answer)",
    "tests.e2e.test_access_control": "tests.support.cluster (token)",
    "tests.drop_server": "tests.support.drop_server",
    "tests.unit.test_drop_engine": "tests.support.drop_server (HEAD, email, first_download)",
    "tests.saas_servers": "tests.support.saas_servers",
}


def imported_test_modules(path: Path) -> list[str]:
    """The modules under ``tests`` that a file imports, at any depth of the file (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "tests" else [f"tests.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [name for name in names if name == "tests" or name.startswith("tests.")]
    return found


def test_test_modules_and_conftests_import_only_the_support_package() -> None:
    wrong = {}
    for path in sorted(TESTS.rglob("*.py")):
        outside = [m for m in imported_test_modules(path) if m.split(".")[:2] != ["tests", "support"]]
        if outside:
            wrong[str(path.relative_to(ROOT))] = {m: MOVED.get(m, "move the helper to tests/support") for m in outside}
    assert wrong == {}, f"import shared helpers from tests/support only: {wrong}"


def test_the_check_sees_test_modules_conftests_and_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "test_example.py"
    module.write_text("from tests.dag.conftest import table\nimport tests.e2e.test_faults\n"
                      "from tests import conftest\nfrom tests.support.smtp import SmtpServer\n"
                      "def f():\n    from tests.unit.test_config import edit\n")
    assert sorted(imported_test_modules(module)) == ["tests.conftest", "tests.dag.conftest", "tests.e2e.test_faults",
                                                     "tests.support.smtp", "tests.unit.test_config"]


def test_the_support_package_holds_no_tests() -> None:
    assert not list((TESTS / "support").rglob("test_*.py"))
