"""The demo: an access request, a dry run of an erasure and the erasure after it, for Jane, on the
configuration in include/privacy/.

Sets up a fresh SQLite shop database from include/privacy/seed/, an SMTP sink on 127.0.0.1 that saves each
email as a .eml file in .demo/mailbox/, a fake Stripe API on 127.0.0.1 (tests/saas_servers/stripe.py) for a
SaaS dataset (examples/saas/: docs/saas.md), and an Airflow home in .demo/airflow/, then runs the requests
with dag.test() and prints where the results are. The demo's configuration is include/privacy/ plus the
Stripe dataset, composed in .demo/config/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
IDENTITY = {"email": "jane@example.com"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_environment(smtp_port: int, fresh_shop: bool = True) -> Path:
    """Airflow home, connections and the store key, all under .demo/ (nothing secret in the repo).

    ``fresh_shop`` recreates the shop database from the seed, so every demo starts from the same data.
    """
    home = DEMO / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    key_file = DEMO / "store.key"
    if not key_file.exists():
        from cryptography.fernet import Fernet

        key_file.write_text(Fernet.generate_key().decode())
    shop_db = DEMO / "demo_shop.db"
    if fresh_shop or not shop_db.exists():
        shop_db.unlink(missing_ok=True)
        with sqlite3.connect(shop_db) as con:
            con.executescript((ROOT / "include/privacy/seed/demo_shop.sql").read_text())
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY": key_file.read_text().strip(),
        "AIRFLOW_CONN_DEMO_SHOP_DB": f"sqlite:///{shop_db}",
        "AIRFLOW_CONN_SMTP_DEFAULT": f"smtp://127.0.0.1:{smtp_port}?disable_tls=true&disable_ssl=true"
                                     "&from_email=privacy%40example.com&timeout=10",
        "PRIVACY_REQUESTS_STORAGE": f"file://{DEMO / 'privacy-requests'}",
    })
    return shop_db


def compose_config(stripe_host: str, stripe_key: str) -> Path:
    """include/privacy/ plus the example Stripe dataset (SaaS config + fideslang dataset), mapped to a connection
    whose host is the local fake Stripe and whose password is its key (the connection, never the YAML)."""
    import yaml

    folder = DEMO / "config"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "include/privacy", folder, ignore=shutil.ignore_patterns("seed"))
    (folder / "saas").mkdir()
    shutil.copy(ROOT / "examples/saas/saas/stripe.yml", folder / "saas/stripe.yml")
    shutil.copy(ROOT / "examples/saas/datasets/stripe.yml", folder / "datasets/stripe.yml")
    settings = yaml.safe_load((folder / "privacy.yml").read_text())
    settings["datasets"]["stripe"] = {"saas": {"config": "saas/stripe.yml", "conn_id": "demo_stripe_api",
                                               "params": {"domain": "host", "api_key": "password"},
                                               "protocol": "http"}, "pool": "demo_stripe_api"}
    (folder / "privacy.yml").write_text(yaml.safe_dump(settings, sort_keys=False))
    host, port = stripe_host.split(":")
    os.environ.update({
        "PRIVACY_REQUESTS_CONFIG_DIR": str(folder),
        "AIRFLOW_CONN_DEMO_STRIPE_API": json.dumps({"conn_type": "http", "host": host, "port": int(port),
                                                    "password": stripe_key, "extra": {"page_size": 2}}),
    })
    return folder


def fake_stripe():
    """Jane has a customer and three charges at Stripe (two pages of 2); John has his own."""
    from tests.support.saas_servers.stripe import StripeApi

    api = StripeApi(key="sk_test_demo").start()
    api.add_customer("cus_jane", "jane@example.com", "Jane Doe", "+15555550100")
    api.add_customer("cus_john", "john@example.com", "John Roe", "+15555550199")
    for i in range(3):
        api.add_charge(f"ch_jane_{i}", "cus_jane", 1000 + i, "jane@example.com")
    api.add_charge("ch_john_0", "cus_john", 500, "john@example.com")
    return api


def run_request(dag, policy: str, request_id: str, **conf) -> dict:
    run = dag.test(run_conf={"policy": policy, "identity": IDENTITY, "request_id": request_id, **conf})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return {"state": run.state, "tasks": states}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show Airflow's task log lines")
    args = parser.parse_args()
    if not args.verbose:
        os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"

    from aiosmtpd.controller import Controller

    from scripts.smtp_sink import EmlFolderHandler

    mailbox = DEMO / "mailbox"
    port = free_port()
    shop_db = prepare_environment(port)
    sink = Controller(EmlFolderHandler(mailbox), hostname="127.0.0.1", port=port)
    sink.start()
    stripe = fake_stripe()
    compose_config(stripe.host, stripe.key)
    try:
        from airflow.utils import db

        db.upgradedb()
        from include.privacy_requests.airflow.dag_factory import build_privacy_request_dag
        from include.privacy_requests.model.loading import load_config

        dag = build_privacy_request_dag(load_config())
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        runs = {
            "access": run_request(dag, "default_access_policy", f"demo-access-{stamp}"),
            "dryrun": run_request(dag, "default_erasure_policy", f"demo-dryrun-{stamp}", dry_run=True),
            "erasure": run_request(dag, "default_erasure_policy", f"demo-erasure-{stamp}",
                                   after_dry_run=f"demo-dryrun-{stamp}"),
        }
    finally:
        sink.stop()
        stripe.stop()
    code = summarize(runs, stamp, shop_db, mailbox)
    print(f"\nfake Stripe API: {len(stripe.writes)} write(s): "
          + ", ".join(f"{w.method} {w.path}" for w in stripe.writes))
    jane = stripe.customers["cus_jane"]
    print(f"  Jane's Stripe customer after erasure: name={jane['name']!r}, phone hashed="
          f"{jane['phone'] != '+15555550100'}, address={jane['address']}")
    return code


def summarize(runs: dict, stamp: str, shop_db: Path, mailbox: Path) -> int:
    from include.privacy_requests.store import layout

    storage = DEMO / "privacy-requests"
    print("\n=== Airflow Privacy Requests demo ===")
    ok = True
    for kind, run in runs.items():
        request_dir = storage / f"demo-{kind}-{stamp}"
        print(f"\n{kind} request demo-{kind}-{stamp}: run {run['state']}")
        failed = [t for t, s in run["tasks"].items() if s not in ("success", "skipped")]
        if failed:
            ok = False
            print(f"  tasks not successful: {failed}")
        report_file = request_dir / layout.REPORT
        if not report_file.exists():
            ok = False
            continue
        report = json.loads(report_file.read_text())
        print(f"  report:         {report_file}")
        for name in layout.PACKAGE_FILES.values():
            if (request_dir / name).exists():
                print(f"  access package: {request_dir / name}")
        print(f"  {'collection':40} {'rows found':>10} {'rows masked':>12}")
        for c in report["collections"]:
            plan = c["erasure"].get("plan") or {}
            masked = c["erasure"].get("masked", "") if not plan else (
                "by vendor" if plan["rows"] is None else f"would {plan['rows']}")
            status = c["erasure"].get("status", "")
            note = f"  ({status})" if status and status not in ("complete", "planned") else ""
            print(f"  {c['collection']:40} {c['access'].get('rows', 0):>10} {masked!s:>12}{note}")
        for event in report["events"]:
            if event["event"] == "email_sent":
                print(f"  vendor email sent to {', '.join(event['recipients'])} (Message-ID {event['message_id']})")
            if event["event"] == "email_rendered":
                print(f"  vendor email to {', '.join(event['recipients'])} rendered, not sent (dry run)")
        if (request_dir / layout.CERTIFICATE).exists():
            print(f"  certificate:    {request_dir / layout.CERTIFICATE}")
    emails = sorted(mailbox.glob("*.eml"))
    print(f"\nshop database (after erasure): {shop_db}")
    print(f"mailbox: {mailbox} ({len(emails)} email(s); newest: {emails[-1].name if emails else 'none'})")
    return 0 if ok and all(r["state"] == "success" for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
