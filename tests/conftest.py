"""Test set-up shared by every test: a throw-away Airflow home and metadata DB, set before Airflow loads; the
shared fixtures (tests/support/fixtures.py); and the tiers.

Tiers are set here, and only here, from the folder a test lives in:

  unit         tests/unit: the engine, no Airflow, no server (seconds)
  dag          tests/dag: the DAGs run in-process with dag.test() on a SQLite metadata DB
  integration  tests/integration: real PostgreSQL, MariaDB, SMTP and S3 servers
  e2e          tests/e2e: real Airflow components driven through REST and a browser
  cluster      every test that starts an Airflow cluster (today: all of tests/e2e)

``./scripts/test.sh`` runs ``-m "not cluster"``; ``./scripts/test.sh --all`` (CI) runs everything, in parallel
processes (pytest-xdist ``--dist loadscope`` with the scheduler below): each module stays in one process, and the
modules that share the demo cluster (the ``world`` fixture of tests/e2e/conftest.py) stay together in one work
unit, so no cluster starts twice. Every process has its own Airflow home and SQLite metadata DB (below),
random database names and free ports, so nothing collides.
"""

from __future__ import annotations

import ast
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.paths import DEMO_CONFIG, ROOT

__all__ = ["DEMO_CONFIG", "ROOT"]  # kept importable for branches not yet moved to tests.support.paths

pytest_plugins = ["tests.support.fixtures"]


def _scratch_root() -> str | None:
    """A RAM-backed folder for what the tests write (Airflow home, metadata DB, pytest's tmp_path), when the
    machine has one with room: SQLite and the request store commit with fsync, which on a loaded disk was a
    good part of every dag.test() run. ``PRQ_TEST_TMP`` names another folder (``PRQ_TEST_TMP=`` keeps the
    system's temporary folder)."""
    chosen = os.environ.get("PRQ_TEST_TMP", "/dev/shm")
    if not chosen or not os.path.isdir(chosen) or not os.access(chosen, os.W_OK):
        return None
    return chosen if shutil.disk_usage(chosen).free > 2 * 1024**3 else None


tempfile.tempdir = _scratch_root()  # pytest's tmp_path and every mkdtemp below follow it (None: the default)
_HOME = tempfile.mkdtemp(prefix="af-test-home-")

os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": Fernet.generate_key().decode(),
})
os.environ.pop("PRIVACY_REQUESTS_CONFIG_DIR", None)
os.environ.pop("PRIVACY_REQUESTS_STORAGE", None)

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "dag", "integration", "e2e")
# Seconds per test (fixture set-up included: a module's cluster starts in its first test): pytest.ini's global
# default (300 s) unless the tier or the test says otherwise; a test or module that needs more than its tier
# says so with its own @pytest.mark.timeout. Generous: they catch a hang, not a slow machine (a loaded 2-core
# machine runs the unit tier 15 times slower than an idle one).
TIER_TIMEOUTS = {"e2e": 900}
# The cluster modules, longest first (measured, see CONTRIBUTING.md): parallel processes start them first, so
# the longest does not start last. A module not listed goes after these, in collection order.
CLUSTER_ORDER = ("test_leaks_and_concurrency", "test_celery", "test_faults", "test_vendor_confirmation",
                 "test_human_steps", "demo")
# The longest modules of the fast loop (measured 2026-12-04, --durations), started first for the same reason:
# a 100 s module that starts last keeps one process busy while the other has nothing left to do.
SLOW_MODULES = ("tests/dag/test_resume.py", "tests/integration/test_batch_equivalence.py",
                "tests/dag/test_privacy_request.py", "tests/dag/test_guarantees.py", "tests/dag/test_retention.py",
                "tests/dag/test_dry_run.py", "tests/dag/test_email_connector.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
        tier = parts[0] if len(parts) > 1 and parts[0] in TIERS else None
        if tier is None:
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier in TIER_TIMEOUTS and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUTS[tier]))
        if tier == "e2e":
            item.add_marker(pytest.mark.cluster)
    # Longest cluster first, then everything else in collection order (the sort is stable; a module's tests
    # stay together, so module-scoped fixtures start once).
    items.sort(key=lambda item: _start_order(work_unit(item.nodeid)))


def work_unit(nodeid: str) -> str:
    """What one parallel process runs as a whole: a module, or every module on the shared demo cluster."""
    module = nodeid.split("::")[0]
    path = Path(module)
    if path.parts[:2] == ("tests", "e2e") and path.stem in demo_cluster_modules():
        return "cluster:demo"
    return module


@functools.cache
def demo_cluster_modules() -> frozenset[str]:
    """The e2e modules whose tests use the demo cluster (the `world` or `finished` fixture of
    tests/e2e/conftest.py) and that start no `world` of their own. Read from the source: the xdist controller
    schedules by test id and never collects the tests itself."""
    found = set()
    for path in (TESTS / "e2e").glob("test_*.py"):
        functions = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)]
        own_world = any(f.name == "world" for f in functions)
        uses_world = any({"world", "finished"} & {a.arg for a in f.args.args} for f in functions)
        if uses_world and not own_world:
            found.add(path.stem)
    return frozenset(found)


def _start_order(unit: str) -> int:
    name = "demo" if unit == "cluster:demo" else Path(unit).stem
    if not unit.startswith(("cluster:", "tests/e2e/")):
        slow = SLOW_MODULES.index(unit) if unit in SLOW_MODULES else len(SLOW_MODULES)
        return len(CLUSTER_ORDER) + 1 + slow
    return CLUSTER_ORDER.index(name) if name in CLUSTER_ORDER else len(CLUSTER_ORDER)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` with the demo cluster's modules as one work unit (pytest-xdist 3.8's loadgroup does
    not group under pytest 9: it renames test ids through an attribute pytest 9 no longer reads)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ClusterScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ClusterScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HOME, ignore_errors=True)  # this process's Airflow home and metadata DB


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata DB (SQLite), for tests that run DAGs: a copy of an empty, migrated one that the
    first process to need it makes (``airflow db reset``) and keeps for this version of Airflow."""
    import fcntl

    import airflow
    from airflow import settings
    from airflow.utils import db

    template = Path(tempfile.gettempdir()) / f"prq-test-airflow-{airflow.__version__}-metadata.db"
    metadata = Path(_HOME) / "airflow.db"
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel processes: one makes the template, the others wait
        if not template.exists():
            db.resetdb()
            settings.engine.dispose()
            shutil.copyfile(metadata, f"{template}.part")
            os.replace(f"{template}.part", template)
            return
    settings.engine.dispose()
    shutil.copyfile(template, metadata)
