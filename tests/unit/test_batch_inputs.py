"""A batch's subjects file without trusting it: read only from a configured inbox (checked before anything is
opened), in bounded blocks, a bad line rejected alone with a reason that echoes nothing of it, memory flat."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from include.privacy_requests.batch import source
from include.privacy_requests.batch.source import LocalFile, RemoteObject, check_subjects_url
from include.privacy_requests.batch.subjects import batch_subjects_source, open_batch, start_batch
from include.privacy_requests.errors import RequestError
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import BatchSettings, PrivacyConfig
from include.privacy_requests.store import layout
from tests.support.paths import DEMO_CONFIG, ROOT

KEY = Fernet.generate_key().decode()
SECRET = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(scope="module")
def demo() -> PrivacyConfig:
    return load_config(DEMO_CONFIG)


def with_batch(config: PrivacyConfig, **settings) -> PrivacyConfig:
    return dataclasses.replace(config, settings=config.settings.model_copy(
        update={"batch": BatchSettings(**settings)}))


def never_remote(url: str):
    raise AssertionError(f"opened {url}")


def test_bad_lines_are_rejected_alone_with_reasons_that_echo_nothing(demo: PrivacyConfig, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = [{"request_id": "r-jane", "identity": {"email": "jane@example.com"}},
            {"request_id": "r-john", "identity": {"email": "john@example.com"}}]
    lines = [json.dumps(good[0]).encode(),
             b'{"request_id": "r-latin1", "identity": {"email": "j\xe9@example.com"}}',  # not UTF-8
             b"[" * 200_000,  # nested deeper than any subject (RecursionError in json before)
             b'{"request_id": "r-long", "identity": {"email": "' + b"a" * 300_000 + b'@example.com"}}',
             f'aws_secret_access_key={SECRET}'.encode(),  # not JSON
             json.dumps({"request_id": "r-k", "identity": {"email": "k@example.com"},
                         f"aws_secret_access_key={SECRET}": "x"}).encode(),  # unknown field
             json.dumps({"request_id": "r-t", "identity": {f"token={SECRET}": "x"}}).encode(),  # unknown type
             json.dumps({"request_id": "r-deep", "identity": {"email": [[[[["x"]]]]]}}).encode(),
             b"", b"   ",  # blank lines are skipped
             json.dumps(good[1]).encode()]
    (inbox / "subjects.jsonl").write_bytes(b"\n".join(lines))
    config = with_batch(demo, subjects_from=[str(inbox)], max_line_bytes=250_000)
    batch = open_batch(config, {"batch_id": "b-1", "policy": "default_access_policy",
                                "subjects_url": f"file://{inbox}/subjects.jsonl"}, "run-1", tmp_path / "s", KEY)

    counts = start_batch(batch, "run-1", "2026-12-04T00:00:00+00:00", batch_subjects_source(batch, never_remote))

    assert counts == {"batch_id": "b-1", "subjects": 2, "rejected": 7}
    assert [s.request_id for s in batch.subjects()] == ["r-jane", "r-john"]
    rejected = list(batch.store.read_rows(layout.BATCH_REJECTED))
    assert [(r["position"], r["reason"]) for r in rejected[:5]] == [
        (2, "line is not UTF-8"), (3, "line nested more than 4 levels deep"),
        (4, "line longer than 250000 bytes (privacy.yml batch.max_line_bytes)"), (5, "line is not JSON"),
        (6, "1 unknown field(s): a subject has only request_id and identity")]
    assert rejected[5]["reason"].startswith("1 unknown identity type(s); datasets use")
    assert rejected[6]["reason"] == "line nested more than 4 levels deep"
    for row in rejected:
        for leak in (SECRET, "aws", "token", "r-latin1", "r-long", "aaaa"):
            assert leak not in json.dumps(row), (leak, row)


def test_too_many_subjects_or_bytes_stop_the_batch(demo: PrivacyConfig, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    subjects = [{"request_id": f"r-{i}", "identity": {"email": f"s{i}@example.com"}} for i in range(30)]
    (inbox / "thirty.jsonl").write_text("".join(json.dumps(s) + "\n" for s in subjects))  # about 1.8 KB
    for index, (settings, message) in enumerate(((dict(max_subjects=29), "more than 29 subjects"),
                                                 (dict(max_file_bytes=1024), "larger than 1024 bytes"))):
        config = with_batch(demo, subjects_from=[str(inbox)], **settings)
        batch = open_batch(config, {"policy": "default_access_policy", "subjects_url": f"{inbox}/thirty.jsonl"},
                           f"run-{index}", tmp_path / f"s{index}", KEY)
        with pytest.raises(RequestError, match=message):
            start_batch(batch, batch.batch_id, "2026-12-04T00:00:00+00:00", batch_subjects_source(batch, never_remote))
    config = with_batch(demo, subjects_from=[str(inbox)], max_subjects=30, max_file_bytes=2048)
    batch = open_batch(config, {"policy": "default_access_policy", "subjects_url": f"{inbox}/thirty.jsonl"},
                       "run-ok", tmp_path / "ok", KEY)
    assert start_batch(batch, "run-ok", "2026-12-04T00:00:00+00:00",
                       batch_subjects_source(batch, never_remote))["subjects"] == 30
    inline = with_batch(demo, max_subjects=4)
    batch = open_batch(inline, {"policy": "default_access_policy", "subjects": subjects}, "run-9", tmp_path / "s", KEY)
    with pytest.raises(RequestError, match="30 subjects, more than 4"):
        list(batch_subjects_source(batch, never_remote))


def test_subjects_url_is_read_only_inside_a_configured_inbox(tmp_path: Path, monkeypatch) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "drop").mkdir(parents=True)
    (inbox / "drop" / "ok.jsonl").write_text("{}\n")
    (tmp_path / "secret.txt").write_text("aws_secret_access_key=x\n")
    (inbox / "link.jsonl").symlink_to(tmp_path / "secret.txt")
    (inbox / "zero.jsonl").symlink_to("/dev/zero")
    (inbox / "home").symlink_to(tmp_path)
    allowed = [str(inbox), "s3://privacy-inbox/drop/"]

    assert check_subjects_url(f"{inbox}/drop/ok.jsonl", allowed) == LocalFile((inbox / "drop" / "ok.jsonl").resolve())
    assert check_subjects_url(f"file://{inbox}/drop/ok.jsonl", allowed) == LocalFile(
        (inbox / "drop" / "ok.jsonl").resolve())
    assert check_subjects_url(f"file://{inbox}/drop/../drop/ok.jsonl", allowed).path.name == "ok.jsonl"
    assert check_subjects_url("s3://privacy-inbox/drop/2026-12.jsonl", allowed) == RemoteObject(
        "s3://privacy-inbox/drop/2026-12.jsonl")

    refused = ["file:///etc/passwd", "/etc/passwd", "/proc/self/environ", "file:///proc/self/environ",
               f"file://{inbox}/../secret.txt", f"{inbox}/link.jsonl", f"{inbox}/zero.jsonl", "file:///dev/zero",
               f"{inbox}/home/secret.txt", str(inbox), f"{inbox}/", f"file://{inbox}", "secret.txt",
               "../inbox/drop/ok.jsonl", f"file://otherhost{inbox}/drop/ok.jsonl", os.environ.get("HOME", "/root"),
               "s3://privacy-inbox/other/x.jsonl", "s3://privacy-inbox/drop/../other/x.jsonl",
               "s3://privacy-inbox/drop//x.jsonl", "s3://privacy-inbox/drop", "s3://privacy-inbox/dropped/x",
               "gs://privacy-inbox/drop/x.jsonl", "simplecache::s3://privacy-inbox/drop/x.jsonl",
               f"zip://x::file://{inbox}/drop/ok.jsonl", "s3://privacy-inbox/drop/x.jsonl?versionId=1",
               "http://169.254.169.254/latest/meta-data/", "s3://privacy-inbox/drop/x\n.jsonl", ""]
    opened: list[object] = []
    monkeypatch.setattr(source, "open_local", lambda path: opened.append(path))
    for url in refused:
        with pytest.raises(RequestError, match="batch.subjects_from") as refusal:
            check_subjects_url(url, allowed)
        assert "aws_secret" not in str(refusal.value)
    with pytest.raises(RequestError, match="none configured"):
        check_subjects_url(f"{inbox}/drop/ok.jsonl", [])
    assert opened == []


def test_a_refused_subjects_url_is_never_opened(demo: PrivacyConfig, tmp_path: Path, monkeypatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(source, "open_local", lambda path: opened.append(path))
    config = with_batch(demo, subjects_from=[str(tmp_path / "inbox")])
    for url in ("file:///etc/passwd", "/proc/self/environ", "s3://bucket/x.jsonl"):
        batch = open_batch(config, {"policy": "default_access_policy", "subjects_url": url}, "run-1",
                           tmp_path / "s", KEY)
        with pytest.raises(RequestError, match="subjects inbox"):
            list(batch_subjects_source(batch, lambda u: opened.append(u)))
    assert opened == []


def test_the_inboxes_are_checked_when_the_configuration_loads() -> None:
    assert BatchSettings(subjects_from=["/srv/inbox", "file:///srv/inbox", "s3://bucket/inbox/"]).subjects_from
    for entry in ("relative/inbox", "s3://bucket/../x", "simplecache::s3://bucket/x", "s3:///x"):
        with pytest.raises(ValueError, match="inbox"):
            BatchSettings(subjects_from=[entry])


CHILD = r"""
import json, os, sys
from include.privacy_requests.batch.source import Limits, Unreadable, subject_lines
from include.privacy_requests.errors import RequestError

def peak_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

path, max_file = sys.argv[1], int(sys.argv[2])
limits = Limits(max_line_bytes=65536, max_file_bytes=max_file, max_subjects=1000)
before = peak_kb()
items, error = [], None
try:
    with open(path, "rb") as fh:
        for item in subject_lines(fh, limits):
            items.append(item.reason if isinstance(item, Unreadable) else item)
except RequestError as exc:
    error = str(exc)
print(json.dumps({"growth_kb": peak_kb() - before, "items": items, "error": error}))
"""


def _child(path: str, max_file_bytes: int) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, path, str(max_file_bytes)], cwd=ROOT, check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(result.stdout)


def test_memory_stays_flat_on_a_200_mb_line_and_on_an_endless_source(tmp_path: Path) -> None:
    """Measured in a child process (its peak RSS before and after reading): the old reader held the whole
    line (+344 MB for this file) and ran out of memory on /dev/zero."""
    big = tmp_path / "big.jsonl"
    with big.open("wb") as fh:
        fh.write(b'{"request_id": "r-1", "identity": {"email": "a@example.com"}}\n')
        block = b"x" * (1 << 20)
        for _ in range(200):
            fh.write(block)
        fh.write(b'\n{"request_id": "r-2", "identity": {"email": "b@example.com"}}\n')

    long_line = _child(str(big), 1 << 30)
    assert long_line["error"] is None
    assert long_line["items"] == [{"request_id": "r-1", "identity": {"email": "a@example.com"}},
                                  "line longer than 65536 bytes (privacy.yml batch.max_line_bytes)",
                                  {"request_id": "r-2", "identity": {"email": "b@example.com"}}]
    assert long_line["growth_kb"] < 16 * 1024, long_line["growth_kb"]

    endless = _child("/dev/zero", 256 << 20)
    assert endless["items"] == ["line longer than 65536 bytes (privacy.yml batch.max_line_bytes)"]
    assert "larger than 268435456 bytes" in endless["error"]
    assert endless["growth_kb"] < 16 * 1024, endless["growth_kb"]
