"""Who may open the Privacy requests pages and what each role sees, on a real api-server with Airflow's simple
auth manager (users per role in tests/support/cluster.py). Every route of the plugin is checked, those added
later included: anonymous 401; no DAG permission 403; viewers (may read the DAG's runs) see statuses and
counts but no identity; users, ops and admins (may change the DAG's runs) see the identity and the emails."""

from __future__ import annotations

import pytest
import requests
from fastapi.routing import APIRoute

from plugins.privacy_requests_ui import app
from scripts.local_airflow import AirflowCluster
from tests.support.cluster import token

PREFIX = "/privacy"
ROUTES = [route.path for route in app.routes if isinstance(route, APIRoute)]
EMAIL_ROUTE = "/requests/{run_id}/emails/{dataset}"
PACKAGE_ROUTE = "/requests/{run_id}/access-package/{fmt}"
PERSONAL_ROUTES = (EMAIL_ROUTE, PACKAGE_ROUTE)  # they show the subject's data: not to viewers
# A batch's pages, asked with a single request's run: past the permission check, no such batch (404).
BATCH_RUN_ROUTES = tuple(r for r in ROUTES if r.startswith("/batches/{run_id}"))
ROLES = ("viewer", "user", "op", "admin")
IDENTITY, MASKED = "jane@example.com", "j***@example.com"


def url(cluster: AirflowCluster, route: str, run_id: str) -> str:
    """The route with real values: a KeyError here means a new route needs a value for its parameter."""
    return cluster.base + PREFIX + route.format_map({"run_id": run_id, "dataset": "daycare_vendor", "fmt": "html",
                                                       "request_id": "no-such-request"})


def run_for(route: str, finished: dict[str, str]) -> str:
    """The run whose data the route shows: the access package is the access request's, the rest the erasure's."""
    return finished["access"] if route == PACKAGE_ROUTE else finished["erasure"]


@pytest.fixture(scope="module")
def sessions(world) -> dict[str, requests.Session]:
    """A session per user, logged in with a Bearer token; "anonymous" sends no credentials."""
    cluster = world[0]
    result = {"anonymous": requests.Session()}
    for username in ("nobody", *ROLES):
        result[username] = requests.Session()
        result[username].headers["Authorization"] = f"Bearer {token(cluster, username)}"
    return result


def test_every_route_is_an_api_route_the_checks_cover() -> None:
    """The app has no routes besides its API routes (FastAPI's docs would answer anyone), and the list the
    other tests walk is the app's own, so it holds the routes known today."""
    assert all(isinstance(route, APIRoute) for route in app.routes), app.routes
    assert {"/", "/api/requests", "/requests/{run_id}", EMAIL_ROUTE, PACKAGE_ROUTE} <= set(ROUTES)


def test_each_role_gets_its_status_on_every_route(world, finished, sessions) -> None:
    cluster = world[0]
    statuses = {(user, route): session.get(url(cluster, route, run_for(route, finished)), timeout=30).status_code
                for user, session in sessions.items() for route in ROUTES}
    expected = {("anonymous", route): 401 for route in ROUTES}
    expected |= {("nobody", route): 403 for route in ROUTES}
    expected |= {("viewer", route): 403 if route in PERSONAL_ROUTES else 200 for route in ROUTES}
    expected |= {(role, route): 200 for role in ("user", "op", "admin") for route in ROUTES}
    expected |= {(role, route): 404 for role in ROLES for route in BATCH_RUN_ROUTES}
    assert BATCH_RUN_ROUTES and statuses == expected


def test_a_refusal_comes_before_any_lookup(world, sessions) -> None:
    """A run that does not exist: 404 only for those allowed to ask, so a 403 does not tell which runs exist."""
    cluster = world[0]
    assert sessions["nobody"].get(url(cluster, "/requests/{run_id}", "no-such-run"), timeout=30).status_code == 403
    assert sessions["viewer"].get(url(cluster, EMAIL_ROUTE, "no-such-run"), timeout=30).status_code == 403
    assert sessions["viewer"].get(url(cluster, "/requests/{run_id}", "no-such-run"), timeout=30).status_code == 404
    assert sessions["user"].get(url(cluster, EMAIL_ROUTE, "no-such-run"), timeout=30).status_code == 404
    assert sessions["viewer"].get(url(cluster, PACKAGE_ROUTE, "no-such-run"), timeout=30).status_code == 403
    assert sessions["user"].get(url(cluster, PACKAGE_ROUTE, "no-such-run"), timeout=30).status_code == 404


def test_the_login_cookie_gets_the_same_answers(world, finished) -> None:
    """The UI sends the ``_token`` cookie, not a Bearer header."""
    cluster = world[0]
    page = url(cluster, "/requests/{run_id}", finished["erasure"])
    assert requests.get(page, cookies={"_token": token(cluster, "nobody")}, timeout=30).status_code == 403
    viewer = requests.get(page, cookies={"_token": token(cluster, "viewer")}, timeout=30)
    assert viewer.status_code == 200 and "hidden (email)" in viewer.text and IDENTITY not in viewer.text
    user = requests.get(page, cookies={"_token": token(cluster, "user")}, timeout=30)
    assert user.status_code == 200 and f"email: {IDENTITY}" in user.text


def test_a_viewer_sees_statuses_and_counts_but_no_identity(world, finished, sessions) -> None:
    cluster, viewer = world[0], sessions["viewer"]
    rows = {r["request_id"]: r for r in viewer.get(url(cluster, "/api/requests", ""), timeout=30).json()}
    access, erasure = rows[finished["access"]], rows[finished["erasure"]]
    counts = ("status", "rows_found", "rows_masked", "emails_sent")
    assert [access[k] for k in counts] == ["success", 12, 0, 0]
    assert [erasure[k] for k in ("status", "rows_masked", "emails_sent")] == ["success", 5, 1]
    assert access["identity"] == erasure["identity"] == "hidden (email)"

    overview = viewer.get(url(cluster, "/", ""), timeout=30).text
    page = viewer.get(url(cluster, "/requests/{run_id}", finished["erasure"]), timeout=30).text
    for html in (overview, page):
        assert finished["erasure"] in html and "hidden (email)" in html
        assert IDENTITY not in html and MASKED not in html and "Values:" not in html and "<iframe" not in html
    assert "erasure.demo_shop.customer" in page and "collection_masked" in page  # timeline, events
    assert "daycare_vendor: Data erasure request" in page  # that an email went out, and to whom
    assert "shown to those who may change this DAG's runs" in page


@pytest.mark.parametrize("role", ["user", "op", "admin"])
def test_those_who_may_change_runs_see_the_identity_and_the_email_as_sent(world, finished, sessions,
                                                                         role: str) -> None:
    cluster, session = world[0], sessions[role]
    rows = {r["request_id"]: r for r in session.get(url(cluster, "/api/requests", ""), timeout=30).json()}
    assert rows[finished["erasure"]]["identity"] == MASKED  # a list shows enough to recognize a request
    assert IDENTITY not in session.get(url(cluster, "/", ""), timeout=30).text

    page = session.get(url(cluster, "/requests/{run_id}", finished["erasure"]), timeout=30).text
    assert f'<span id="identity">email: {IDENTITY}</span>' in page
    assert f'<iframe sandbox src="./{finished["erasure"]}/emails/daycare_vendor"' in page
    email = session.get(url(cluster, EMAIL_ROUTE, finished["erasure"]), timeout=30)
    assert f"Values: {IDENTITY}" in email.text
    assert email.headers["Content-Security-Policy"] == "sandbox" and email.headers["Cache-Control"] == "no-store"


def test_the_access_package_downloads_for_those_who_may_see_it(world, finished, sessions) -> None:
    """Each format of the access request's package, linked from its page; the HTML opens under a policy that
    lets it run nothing; the erasure request has no package."""
    cluster, user, viewer = world[0], sessions["user"], sessions["viewer"]
    page = user.get(url(cluster, "/requests/{run_id}", finished["access"]), timeout=30).text
    for fmt, name in (("html", "access_package.html"), ("json", "access_package.json"),
                      ("csv", "access_package.zip")):
        assert f'href="./{finished["access"]}/access-package/{fmt}">{name}</a>' in page
        got = user.get(url(cluster, "/requests/{run_id}", finished["access"]) + f"/access-package/{fmt}", timeout=30)
        assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
        assert name in got.headers["Content-Disposition"]
        assert "default-src 'none'" in got.headers["Content-Security-Policy"]
    html = user.get(url(cluster, PACKAGE_ROUTE, finished["access"]), timeout=30)
    assert html.headers["Content-Type"].startswith("text/html") and IDENTITY in html.text
    assert "access-package/" not in viewer.get(url(cluster, "/requests/{run_id}", finished["access"]),
                                               timeout=30).text
    assert user.get(url(cluster, PACKAGE_ROUTE, finished["erasure"]), timeout=30).status_code == 404
    assert user.get(url(cluster, "/requests/{run_id}/access-package/pdf", finished["access"]),
                    timeout=30).status_code == 404
