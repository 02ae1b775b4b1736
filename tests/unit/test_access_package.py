"""The access package's parts without Airflow: the policy setting and its errors, cells a spreadsheet would run,
readable values, and 100,000 rows of one subject packaged in bounded memory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from include.privacy_requests.deliverables.package.csv_zip import safe_cell
from include.privacy_requests.deliverables.package.labels import category, readable
from include.privacy_requests.errors import ConfigError
from include.privacy_requests.model.loading import load_config

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
ROOT = DEMO.parents[1]


def with_package_setting(tmp_path: Path, setting: object) -> Path:
    folder = tmp_path / "privacy"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("seed"))
    path = folder / "policies" / "demo_policies.yml"
    data = yaml.safe_load(path.read_text())
    data["policy"][0]["access_package"] = setting
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def test_the_default_is_json_and_html_without_delivery(tmp_path: Path) -> None:
    config = load_config(with_package_setting(tmp_path, {}))
    settings = config.policies["default_access_policy"].access_package
    assert settings.formats == ["json", "html"] and settings.deliver is None


@pytest.mark.parametrize(("setting", "where", "says"), [
    ({"formats": ["pdf"]}, "policy[0].access_package.formats[0]", "'json', 'html' or 'csv'"),
    ({"formats": []}, "policy[0].access_package.formats", "at least 1 item"),
    ({"formats": ["html", "html"]}, "policy[0].access_package", "each format may be listed once"),
    ({"formats": ["json"], "deliver": "email"}, "policy[0].access_package", "add html to formats"),
    ({"deliver": "post"}, "policy[0].access_package.deliver", "'email'"),
    ({"format": ["html"]}, "policy[0].access_package.format", "Extra inputs are not permitted"),
])
def test_a_bad_package_setting_names_the_file_and_field(tmp_path: Path, setting: object, where: str,
                                                         says: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(with_package_setting(tmp_path, setting))
    [problem] = error.value.problems
    assert (problem.file, problem.field) == ("policies/demo_policies.yml", where)
    assert says in problem.message


@pytest.mark.parametrize(("value", "cell"), [
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'), ("+1555", "'+1555"), ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), ("a=b", "a=b"),
    (-5, -5), (2.5, 2.5), (None, ""), (["=a", 1], '["=a", 1]'), ([{"k": "-1"}], '[{"k": "-1"}]'),
    (["-a"], '["-a"]'),
])
def test_a_cell_a_spreadsheet_would_run_starts_with_a_quote(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


def test_values_read_as_words() -> None:
    assert readable("2024-05-01T10:00:00") == "1 May 2024, 10:00"
    assert readable("2024-05-01T10:00:00+00:00") == "1 May 2024, 10:00 UTC"
    assert readable("2024-01-05") == "5 January 2024"
    assert readable("2024-13-45") == "2024-13-45"  # looks like a date, is not one
    assert (readable(None), readable(True), readable(12)) == ("-", "yes", "12")
    assert category("user.contact.email") == ("User Contact Email", "User's contact email address.")
    assert category("user.loyalty.tier") == ("Tier", "")  # an organization's own category (privacy.yml)


BOUNDED = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from include.privacy_requests.store import layout
    from include.privacy_requests.deliverables.access_package import write_access_package
    from include.privacy_requests.model.loading import load_config
    from include.privacy_requests.model.graph import CollectionAddress
    from include.privacy_requests.request.request import open_request

    step, folder, key, rows = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    conf = {"policy": "default_access_policy", "identity": {"email": "jane@example.com"}, "request_id": "big"}
    request = open_request(load_config(), conf, "run", folder, key)
    if step == "write":  # as the access step does: streamed into encrypted chunks
        request.store.write_rows(layout.rows(CollectionAddress("demo_shop", "login")), (
            {"id": i, "customer_id": 1, "time": "2024-05-01T10:00:00", "ip_address": f"203.0.113.{i % 250}"}
            for i in range(rows)))
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, counts = write_access_package(request)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sizes = {p.name: p.stat().st_size for p in request.store.base.glob("access_package*")}
        print(json.dumps({"counts": counts, "grew_kib": after - before, "sizes": sizes}))
""")


def package_in_child(tmp_path: Path, rows: int) -> dict:
    """Store ``rows`` login rows of one subject, then package them in a fresh interpreter whose peak RSS
    growth while packaging is the figure (ru_maxrss is a peak: the rows are written by another process)."""
    folder, key = tmp_path / str(rows), Fernet.generate_key().decode()
    result = {}
    for step in ("write", "package"):
        done = subprocess.run([sys.executable, "-c", BOUNDED, step, str(folder), key, str(rows)], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout) if step == "package" else result
    return result


def test_100000_rows_of_one_subject_are_packaged_in_bounded_memory(tmp_path: Path) -> None:
    small, large = package_in_child(tmp_path, 10_000), package_in_child(tmp_path, 100_000)
    assert large["counts"] == {"demo_shop:login": 100_000}
    assert set(large["sizes"]) == {"access_package.json", "access_package.html", "access_package.zip"}
    # Ten times the rows, about the same memory: the rows are streamed, never held.
    assert large["sizes"]["access_package.json"] > 9 * small["sizes"]["access_package.json"] > 8_000_000 / 10
    assert large["grew_kib"] < small["grew_kib"] + 8 * 1024, (small, large)
    assert large["grew_kib"] < 16 * 1024, large  # holding the 100,000 rows would take about 35 MiB
    print(f"peak RSS growth while packaging: 10,000 rows {small['grew_kib'] / 1024:.1f} MiB, 100,000 rows "
          f"{large['grew_kib'] / 1024:.1f} MiB; files {large['sizes']}")


def test_every_value_on_the_html_page_is_isolated_and_bidi_overrides_are_shown() -> None:
    """A stored U+202E ("Invoice\u202egnp.exe" reads as "Invoiceexe.png") reorders nothing on the page: each
    value is in its own <bdi>, and the directional formatting characters show as what they are."""
    from include.privacy_requests.deliverables.package.html_page import FieldMeaning, Section, System, _pages, entries

    row = {"file": "Invoice\u202egnp.exe", "tags": ["\u202eabc", "\u2067x\u2069"], "note": "plain",
           "meta": {"k\u202e": "\u202dv"}}
    html = _pages.get_template("access_package.html.j2").render(
        organization="Example Corp", request_id="r-1", date="4 December 2026", total=1, shown_rows=500,
        full_data_in=[], systems=[System("Shop", "", [Section("shop-files", "Files", "", 1,
                                                               [FieldMeaning("File", [])], [entries(row)])])])

    for code in (0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069):
        assert chr(code) not in html
    for value in ("Invoice[U+202E]gnp.exe", "[U+202E]abc", "[U+2067]x[U+2069]", "plain", "[U+202D]v"):
        assert f"<bdi>{value}</bdi>" in html, value
    assert "<dt><bdi>K[U+202E]</bdi></dt>" in html
    assert "unicode-bidi: isolate" in html
    body = html.split("<main>", 1)[1]
    assert "<dd>plain" not in body and "<li>[U+202E]" not in body  # no bare value anywhere
