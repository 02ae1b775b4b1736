"""Vendor erasure emails: what they list, in HTML and text, and the instructions built from the demo config."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from include.privacy_requests.connectors.vendor import build_instruction
from include.privacy_requests.model.graph import CollectionAddress
from include.privacy_requests.model.loading import load_config
from include.privacy_requests.model.settings import PrivacyConfig
from include.privacy_requests.outbound.email.message import build_message
from include.privacy_requests.outbound.email.render import (
    DIGEST_INLINE_LIMIT,
    DigestEntry,
    RenderedEmail,
    render_digest_email,
    render_erasure_email,
)

DEMO = Path(__file__).resolve().parents[2] / "include" / "privacy"
ORG = "Example Corp"
HOSTILE = "<script>alert(1)</script>"


def instruction(name: str, locators: dict[str, list[Any]], erase: dict[str, str],
                upstream: tuple[str, ...] = ()) -> dict[str, Any]:
    """An instruction as the erasure step records it; one with an upstream is located only through it."""
    return {"collection": f"daycare_vendor:{name}", "name": name, "locators": locators, "erase": erase,
            "located_by_values": not upstream, "upstream": list(upstream)}


INSTRUCTIONS = [
    instruction("daycare_customer", {"customer_id": [17, 42]}, {"scholarship": "null_rewrite"}),
    instruction("children", {"parent_id": ["daycare_vendor:daycare_customer:id"]},
                {"first_name": "null_rewrite", "report_card.grades": "null_rewrite"},
                upstream=("daycare_vendor:daycare_customer",)),
    instruction("payment", {"payer_email": ["jane@example.com"]}, {}),
]


def render(instructions: list[dict[str, Any]] = INSTRUCTIONS, test: bool = False) -> RenderedEmail:
    return render_erasure_email(organization=ORG, request_id="req-123", vendor_name="Happy Days Daycare",
                                instructions=instructions, test=test)


def section(body: str, start: str, end: str | None) -> str:
    """The part of ``body`` from ``start`` up to ``end`` (or the end)."""
    begin = body.index(start)
    return body[begin:body.index(end, begin + len(start))] if end else body[begin:]


def test_subject_names_the_organization_and_request() -> None:
    email = render()
    assert ORG in email.subject and "req-123" in email.subject
    assert not email.subject.startswith("[TEST]")


def test_test_email_is_marked() -> None:
    email = render(test=True)
    assert email.subject.startswith("[TEST] ")
    assert "test email" in email.html.lower() and "test email" in email.text.lower()


def test_html_lists_every_collection_locator_and_field() -> None:
    html = render().html
    assert ORG in html and "Happy Days Daycare" in html and "req-123" in html
    customer = section(html, "<h3>daycare_customer</h3>", "<h3>")
    assert "Field: <i>customer_id</i>, Values: 17, 42" in customer
    assert "<i>scholarship</i>" in customer
    children = section(html, "<h3>children</h3>", "<h3>")
    assert "Field: <i>parent_id</i>, Values: daycare_vendor:daycare_customer:id" in children
    assert "<i>first_name</i>" in children and "<i>report_card.grades</i>" in children
    assert "No erasures needed" not in children
    payment = section(html, "<h3>payment</h3>", None)
    assert "Field: <i>payer_email</i>, Values: jane@example.com" in payment
    assert "No erasures needed on this collection" in payment


def test_text_lists_every_collection_locator_and_field() -> None:
    text = render().text
    assert ORG in text and "Happy Days Daycare" in text and "req-123" in text
    customer = section(text, "== daycare_customer ==", "== ")
    assert "Field: customer_id, Values: 17, 42" in customer
    assert "- scholarship" in customer
    children = section(text, "== children ==", "== ")
    assert "Field: parent_id, Values: daycare_vendor:daycare_customer:id" in children
    assert "- first_name" in children and "- report_card.grades" in children
    assert "No erasures needed" not in children
    payment = section(text, "== payment ==", None)
    assert "Field: payer_email, Values: jane@example.com" in payment
    assert "No erasures needed on this collection" in payment


def test_collections_are_listed_in_a_stable_order() -> None:
    forward, backward = render(INSTRUCTIONS), render(list(reversed(INSTRUCTIONS)))
    assert forward == backward
    text = forward.text
    assert text.index("== children ==") < text.index("== daycare_customer ==") < text.index("== payment ==")


def test_markup_in_a_locator_is_escaped_in_html_and_verbatim_in_text() -> None:
    email = render([instruction("payment", {"payer_email": [HOSTILE]}, {})])
    assert HOSTILE not in email.html
    assert "<script" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert f"Field: payer_email, Values: {HOSTILE}" in email.text


# -- instructions built from the demo configuration --------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> PrivacyConfig:
    return load_config(DEMO)


def demo_instruction(config: PrivacyConfig, name: str, arrived: dict[str, list[Any]]) -> dict[str, Any]:
    address = CollectionAddress("daycare_vendor", name)
    collection = config.graph.collections[address]
    return build_instruction(collection, config.plan.inputs[address], arrived,
                             config.policies["default_erasure_policy"].erasure_fields(collection))


def test_children_are_located_by_the_vendor_own_parent_id(demo: PrivacyConfig) -> None:
    result = demo_instruction(demo, "children", {})
    assert result["collection"] == "daycare_vendor:children"
    assert result["name"] == "children"
    assert result["locators"] == {"parent_id": ["daycare_vendor:daycare_customer:id"]}


def test_nested_fields_are_erased(demo: PrivacyConfig) -> None:
    erase = demo_instruction(demo, "children", {})["erase"]
    assert erase == {
        "first_name": "null_rewrite",
        "birthday": "null_rewrite",
        "report_card.grades": "null_rewrite",
        "report_card.behavior_issues": "null_rewrite",
    }


def test_values_from_another_dataset_are_locators(demo: PrivacyConfig) -> None:
    result = demo_instruction(demo, "daycare_customer", {"customer_id": [1, 2]})
    assert result["locators"] == {"customer_id": [1, 2]}
    assert result["erase"] == {"scholarship": "null_rewrite"}


def test_collection_without_matching_fields_has_nothing_to_erase(demo: PrivacyConfig) -> None:
    result = demo_instruction(demo, "payment", {"payer_email": ["jane@example.com"], "id": []})
    assert result["erase"] == {}
    assert result["locators"] == {"payer_email": ["jane@example.com"]}


def test_demo_instructions_render(demo: PrivacyConfig) -> None:
    instructions = [demo_instruction(demo, "daycare_customer", {"customer_id": [7]}),
                    demo_instruction(demo, "children", {}),
                    demo_instruction(demo, "payment", {"payer_email": ["jane@example.com"]})]
    text = render(instructions).text
    assert "Field: parent_id, Values: daycare_vendor:daycare_customer:id" in text
    assert "- report_card.grades" in text
    assert "No erasures needed on this collection" in section(text, "== payment ==", None)


def test_collections_the_vendor_cannot_locate_ask_for_nothing() -> None:
    """children is located through daycare_customer; with no customer id to give, neither can be found."""
    unlocated = [
        instruction("daycare_customer", {}, {"scholarship": "null_rewrite"}, upstream=()),
        instruction("children", {"parent_id": ["daycare_vendor:daycare_customer:id"]}, {"first_name": "null_rewrite"},
                    upstream=("daycare_vendor:daycare_customer",)),
    ]
    unlocated[0]["located_by_values"] = False
    email = render(unlocated)
    for body in (email.html, email.text):
        assert body.count("We hold nothing that locates records in this collection") == 2
        assert "first_name" not in body and "scholarship" not in body


@pytest.mark.parametrize("hostile", ["Evil\r\nBcc: attacker@example.com", "Evil\nX-Injected: 1",
                                     "Evil\rSubject: other"])
def test_header_injection_through_the_vendor_name_or_request_id_adds_no_header(hostile: str) -> None:
    """What reaches a header (subject) is folded or refused, never a header of its own."""
    from include.privacy_requests.outbound.email.message import build_message

    found = instruction("customer", {"email": ["a@x.org"]}, {"name": "null_rewrite"})
    rendered = render_erasure_email(organization=hostile, request_id="r-1", vendor_name=hostile, instructions=[found])
    try:
        message = build_message(rendered, sender="privacy@example.com", to=["vendor@example.com"])
        raw = message.as_bytes()
    except ValueError:
        return  # the email library refuses a header with a line break: nothing is sent
    headers = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    assert b"\nBcc:" not in headers and b"\nX-Injected:" not in headers
    assert headers.count(b"\nSubject:") + headers.startswith(b"Subject:") == 1


def digest(count: int) -> RenderedEmail:
    entries = [DigestEntry(f"r-{n:03d}", INSTRUCTIONS) for n in range(count)]
    return render_digest_email(organization=ORG, reference="drop-2026-11", vendor_name="Happy Days Daycare",
                               entries=entries)


def test_a_digest_lists_each_request_with_the_instructions_its_own_email_would_carry() -> None:
    email = digest(3)
    assert "drop-2026-11" in email.subject and "3 request(s)" in email.subject
    single = render().text
    own = section(single, "\n== ", "Please reply")
    for n in range(3):
        body = section(email.text, f"=== Request r-{n:03d} ===", "=== Request" if n < 2 else "Please reply")
        assert body.split("===\n", 1)[1].strip() == own.strip()
        assert f"<h3>Request <code>r-{n:03d}</code></h3>" in email.html
    assert not email.attachments


def test_a_long_digest_puts_every_instruction_in_a_csv_attachment_safe_for_spreadsheets() -> None:
    hostile = instruction("payment", {"payer_email": ["=HYPERLINK(\"http://x\")", "@SUM(1)", "+1", HOSTILE]},
                          {"card": "null_rewrite"})
    entries = [DigestEntry(f"r-{n:03d}", [hostile]) for n in range(DIGEST_INLINE_LIMIT + 1)]
    email = render_digest_email(organization=ORG, reference="b-1", vendor_name=None, entries=entries)
    assert "Request r-000" not in email.text and "erasure-requests.csv" in email.text
    [attachment] = email.attachments
    rows = list(csv.reader(io.StringIO(attachment.data.decode())))
    assert rows[0][0] == "request_reference" and len(rows) == DIGEST_INLINE_LIMIT + 2
    values = rows[1][3]
    assert values.startswith("'=HYPERLINK") and rows[1][4] == "card"
    message = build_message(email, sender="privacy@example.com", to=["v@example.com"])
    parts = [p.get_filename() for p in message.iter_attachments()]
    assert parts == ["erasure-requests.csv"]
    assert message.get_body(("plain",)).get_content().startswith("Hello")


def test_markup_in_a_digest_is_escaped() -> None:
    entries = [DigestEntry("r-1", [instruction("payment", {"payer_email": [HOSTILE]}, {"card": "null_rewrite"})])]
    email = render_digest_email(organization=ORG, reference="b-<1>", vendor_name=HOSTILE, entries=entries)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html and "b-&lt;1&gt;" in email.html
