"""The DROP download (names, headers, rows), the response file, and the API client against a local server
that enforces the key."""

from __future__ import annotations

import zipfile

import pytest

from include.privacy_requests.drop.api import DropApi
from include.privacy_requests.drop.files import (
    DropFileError,
    open_download,
    parse_file_name,
    response_csv,
    response_name,
)
from include.privacy_requests.drop.hashing import hash_field
from include.privacy_requests.errors import RequestError, TransientError
from tests.support.drop_server import DropServer, make_zip

H1 = hash_field("email", "a@example.com")
H2 = hash_field("phone", "+1(415)555-9317")


def test_file_names() -> None:
    f = parse_file_name("20260312_4821_Email_part01.csv", "4821")
    assert (f.list_type, f.broker_id, f.suffix, f.download_date.isoformat()) == ("Email", "4821", "part01",
                                                                                 "2026-03-12")
    assert parse_file_name("x/20260312_4821_Removed.csv").removed
    for bad, says in [("20260312_4821_Emails.csv", "data type"), ("2026031_4821_Email.csv", "does not follow"),
                      ("20261332_4821_Email.csv", "impossible date"), ("20260312_9999_Email.csv", "not ours"),
                      ("20260312_4821_Email_toolongsuffix.csv", "does not follow")]:
        with pytest.raises(DropFileError, match=says):
            parse_file_name(bad, "4821")


def test_download_rows_and_rejections() -> None:
    data = make_zip({
        "20260312_4821_Email.csv": f"ID,Hash\r\nAbCdEf123456,{H1}\r\nshort,{H1}\r\nAbCdEf123457,not-a-hash\r\n"
                                   f"AbCdEf123456,{H1}\r\n\r\nAbCdEf123458,{H1},extra\r\n",
        "20260312_4821_Phone.csv": "\ufeffID,Hash\r\n",
        "20260312_4821_Removed.csv": f"ID,Hash,ListType\r\nZZZZZZ000001,{H2},Phone\r\nZZZZZZ000002,{H2},Fax\r\n",
    })
    download = open_download(data, "4821")
    assert [f.list_type for f in download.files] == ["Email", "Phone", "Removed"]
    email, phone, removed = download.files
    assert list(download.items(email)) == [{"id": "AbCdEf123456", "hash": H1}]
    assert list(download.items(phone)) == []
    assert list(download.items(removed)) == [{"id": "ZZZZZZ000001", "hash": H2, "list_type": "Phone"}]
    reasons = [(r.line, r.reason) for r in download.rejected]
    assert [line for line, _ in reasons] == [3, 4, 5, 7, 3]
    assert "12 letters" in reasons[0][1] and "44 characters" in reasons[1][1] and "twice" in reasons[2][1]
    assert "columns" in reasons[3][1] and "ListType" in reasons[4][1]
    assert all(H1 not in r.reason and "short" not in r.reason for r in download.rejected)  # nothing echoed


@pytest.mark.parametrize(("files", "says"), [
    ({"20260312_4821_Email.csv": "Id,Hash\r\n"}, "header"),
    ({"20260312_4821_Email.csv": "ID,Hash\r\n", "notes.txt": "x"}, "does not follow"),
    ({"20260312_4821_Email.csv": "ID,Hash\r\n", "20260313_4821_Phone.csv": "ID,Hash\r\n"}, "different dates"),
    ({"20260312_4821_Removed.csv": "ID,Hash\r\n"}, "header"),
    ({}, "empty"),
])
def test_download_refused_whole(files: dict[str, str], says: str) -> None:
    with pytest.raises(DropFileError, match=says):
        open_download(make_zip(files), "4821")
    with pytest.raises(DropFileError, match="not a ZIP"):
        open_download(b"hello")


def test_response_file() -> None:
    f = parse_file_name("20260312_4821_Email.csv")
    assert response_name(f) == "20260312_4821_Email.csv"
    assert response_name(f, "amend1") == "20260312_4821_Email_amend1.csv"
    assert "".join(response_csv(iter([("AbCdEf123456", 3), ("AbCdEf123457", 5)]))) == \
        "Id,Status\r\nAbCdEf123456,3\r\nAbCdEf123457,5\r\n"


@pytest.fixture
def server():
    running = DropServer("s3cret")
    yield running
    running.stop()


def test_api_enforces_key_and_maps_answers(server: DropServer) -> None:
    with pytest.raises(RequestError, match="401"):
        DropApi(server.url, "wrong").download()
    assert server.unauthorized == 1
    api = DropApi(server.url, "s3cret")
    zipped = make_zip({"20260312_4821_Email.csv": "ID,Hash\r\n"})
    server.downloads += [(202, {"message": "Preparing"}), (429, {}), (200, zipped), (200, {"message": "No data"}),
                         (409, {"message": "Previous download is not complete"})]
    with pytest.raises(TransientError, match="preparing"):
        api.download()
    with pytest.raises(TransientError, match="429"):
        api.download()
    assert zipfile.ZipFile(__import__("io").BytesIO(api.download())).namelist() == ["20260312_4821_Email.csv"]
    assert api.download() is None
    with pytest.raises(RequestError, match="409"):
        api.download()
    answer = api.upload({"20260312_4821_Email.csv": b"Id,Status\r\nAbCdEf123456,3\r\n"})
    assert answer["acceptedCount"] == 1
    api.upload({"20260312_4821_Email_amend1.csv": b"Id,Status\r\nAbCdEf123456,2\r\n"}, amend=True)
    assert [(path, list(files)) for path, files in server.uploads] == [
        ("/data/upload", ["20260312_4821_Email.csv"]), ("/data/amend", ["20260312_4821_Email_amend1.csv"])]
    with pytest.raises(TransientError):
        DropApi("http://127.0.0.1:9", "s3cret").download()  # nothing listens on the discard port
