"""The engine knows nothing of Airflow: every module outside ``include/privacy_requests/airflow/`` imports
without loading a single ``airflow`` module (checked in a fresh interpreter, where nothing was imported yet)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

ENGINE = ROOT / "include" / "privacy_requests"


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
