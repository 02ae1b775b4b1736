"""A person's path through the UI, in headless Chromium (Debian's chromium and chromedriver): log into
Airflow, open Privacy requests, check the rows, open a request's page, read the access package as the data
subject would, start a request from the trigger form without JSON; screenshots go to test-artifacts/, each
taken once the page has rendered."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from scripts.local_airflow import AirflowCluster
from tests.support.paths import ROOT

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def log_in(browser: webdriver.Chrome, cluster: AirflowCluster) -> WebDriverWait:
    wait = WebDriverWait(browser, 30)
    browser.get(f"{cluster.base}/auth/login")
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys(cluster.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "/auth/login" not in d.current_url)
    return wait


def test_a_person_finds_the_request_and_its_report(world, finished, browser: webdriver.Chrome) -> None:
    cluster = world[0]
    wait = log_in(browser, cluster)
    # The home page is drawn by scripts after the load: wait for its last section before the screenshot.
    wait.until(ec.presence_of_element_located((By.XPATH, "//h2[normalize-space()='Health']")))
    wait.until(lambda d: "Dag Runs" in d.find_element(By.TAG_NAME, "body").text)
    assert shot(browser, "airflow-home").stat().st_size > 10_000

    browser.get(f"{cluster.base}/privacy/")
    table = wait.until(ec.presence_of_element_located((By.ID, "requests")))
    ids = [row.get_attribute("data-request-id") for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert finished["access"] in ids and finished["erasure"] in ids
    assert "j***@example.com" in table.text and "jane@example.com" not in table.text
    assert shot(browser, "privacy-requests").stat().st_size > 10_000

    browser.find_element(By.LINK_TEXT, finished["erasure"]).click()
    wait.until(ec.presence_of_element_located((By.ID, "timeline")))
    assert f"Privacy request {finished['erasure']}" in browser.find_element(By.TAG_NAME, "h1").text
    assert "erasure.demo_shop.customer" in browser.find_element(By.ID, "timeline").text
    assert "demo_shop:address" in browser.find_element(By.ID, "collections").text
    assert browser.find_elements(By.CSS_SELECTOR, "iframe[title='Email to daycare_vendor']")
    assert shot(browser, "privacy-request").stat().st_size > 10_000


def test_a_person_approves_a_request_under_required_actions(world, browser: webdriver.Chrome) -> None:
    cluster, smtp = world[0], world[1]
    smtp.start()
    conf = {"policy": "reviewed_erasure_policy", "identity": {"email": "ada@example.com"}, "request_id": "approve-ui"}
    cluster.trigger("approve-ui", conf)
    cluster.wait_until_parked("approve-ui", "approve_request")
    wait = log_in(browser, cluster)

    browser.get(f"{cluster.base}/dags/privacy_request/runs/approve-ui/tasks/approve_request/required_actions")
    approve = wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Approve']")))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Approve privacy request approve-ui?" in page
    assert "ada@example.com" not in page  # the question names identity types, not values
    shot(browser, "required-action-approval")
    approve.click()

    assert cluster.wait_for_run("approve-ui") == "success"
    review = cluster.get("/privacy/api/requests")
    assert next(r for r in review if r["run_id"] == "approve-ui")["status"] == "success"
    assert cluster.task_states("approve-ui")["erasure.demo_shop.customer"][0] == "success"


def test_a_person_reads_the_access_package_of_the_demo_access_request(world, finished,
                                                                      browser: webdriver.Chrome) -> None:
    """From the request's page to the HTML package, as the person it is for sees it: a letter with headings,
    their values and the names of the kinds of data; readable on a phone's width too."""
    cluster = world[0]
    wait = log_in(browser, cluster)
    browser.get(f"{cluster.base}/privacy/requests/{finished['access']}")
    wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "access_package.html"))).click()
    wait.until(ec.presence_of_element_located((By.ID, "request-reference")))
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "h1, h2, h3")]
    assert headings[:3] == ["Your personal data", "Demo shop", "Customer"]
    assert {"Login", "Order item", "Address"} <= set(headings)
    assert browser.find_element(By.ID, "request-reference").text == finished["access"]
    customer = browser.find_element(By.ID, "demo_shop-customer").text
    assert "jane@example.com" in customer and "User Contact Email" in customer
    assert "2 records." in browser.find_element(By.ID, "demo_shop-login").text
    assert not browser.find_elements(By.TAG_NAME, "script")
    assert shot(browser, "access-package").stat().st_size > 10_000
    browser.set_window_size(390, 844)
    try:
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone: no sideways scrolling
        assert shot(browser, "access-package-phone").stat().st_size > 10_000
    finally:
        browser.set_window_size(1400, 1000)


def test_a_person_starts_a_request_from_the_trigger_form(world, browser: webdriver.Chrome) -> None:
    """Choose a policy, type an email, press Trigger: the run starts with the identity from the field."""
    cluster = world[0]
    wait = log_in(browser, cluster)
    browser.get(f"{cluster.base}/dags/privacy_request")
    wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']"))).click()
    policy = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[role=combobox][aria-required=true]")))
    assert browser.find_element(By.NAME, "element_policy").get_attribute("value") == ""  # none preselected
    policy.send_keys("Access request (GDPR")
    policy.send_keys(Keys.ENTER)
    browser.find_element(By.ID, "element_email").send_keys("ada@example.com")
    assert shot(browser, "trigger-form").stat().st_size > 10_000
    before = browser.current_url
    dialog_buttons = browser.find_elements(By.XPATH, "//*[@role='dialog']//button")
    next(b for b in dialog_buttons if b.text.strip() == "Trigger").click()
    wait.until(lambda d: "/runs/" in d.current_url and d.current_url != before)
    run_id = browser.current_url.rsplit("/runs/", 1)[1]
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(normalize-space(), 'Dag Run Triggered')]")))
    shot(browser, "trigger-form-run")
    run_id = unquote(run_id)
    conf = cluster.get(f"/api/v2/dags/privacy_request/dagRuns/{run_id}")["conf"]
    assert conf["policy"] == "default_access_policy" and conf["email"] == "ada@example.com"
    assert not conf.get("identity")
    cluster.wait_for_task(run_id, "validate_request", "success")  # the engine took the identity from the field


def test_a_bidi_override_in_stored_data_reorders_nothing_in_the_access_package(world,
                                                                               browser: webdriver.Chrome) -> None:
    """A name stored as "Invoice\u202egnp.exe" would read "Invoiceexe.png" and flip the text after it: on the
    page the value is isolated (<bdi>, unicode-bidi: isolate) and the override shows as [U+202E], so what the
    browser draws left to right is what is stored, and the next field is where it belongs."""
    cluster, smtp, shop = world[0], world[1], world[2]
    smtp.start()
    with sqlite3.connect(shop) as con:
        con.execute("INSERT INTO customer VALUES (40, 'bidi@example.com', 'Invoice\u202egnp.exe', "
                    "'+15555550140', 4, '\u202eredlof', '2024-05-01')")
    conf = {"policy": "default_access_policy", "identity": {"email": "bidi@example.com"}, "request_id": "ui-bidi"}
    cluster.session.post(f"{cluster.base}/api/v2/dags/privacy_request/dagRuns", timeout=300,
                         json={"logical_date": None, "dag_run_id": "ui-bidi", "conf": conf}).raise_for_status()
    assert _wait_for_run(cluster, "ui-bidi", timeout=900) == "success"
    wait = log_in(browser, cluster)

    browser.get(f"{cluster.base}/privacy/requests/ui-bidi/access-package/html")
    customer = wait.until(ec.presence_of_element_located((By.ID, "demo_shop-customer")))
    assert "Invoice[U+202E]gnp.exe" in customer.text and "\u202e" not in browser.page_source
    values = customer.find_elements(By.CSS_SELECTOR, "dd > bdi")
    assert values and all(v.value_of_css_property("unicode-bidi") == "isolate" for v in values)
    # Drawn in stored order: "Invoice" left of "gnp.exe", and the loyalty tier's value starts at its column.
    left = browser.execute_script("""
        const out = {};
        for (const bdi of document.querySelectorAll('#demo_shop-customer dd > bdi')) {
          const text = bdi.firstChild; if (!text) continue;
          for (const word of ['Invoice', 'gnp.exe', '[U+202E]redlof']) {
            const at = text.data.indexOf(word); if (at < 0) continue;
            const range = document.createRange(); range.setStart(text, at); range.setEnd(text, at + word.length);
            out[word] = range.getBoundingClientRect().left;
            out[word + ':dd'] = bdi.parentElement.getBoundingClientRect().left;
          }
        }
        return out;""")
    assert left["Invoice"] < left["gnp.exe"], left
    assert abs(left["[U+202E]redlof"] - left["[U+202E]redlof:dd"]) < 2, left
    shot(browser, "access-package-bidi")


def _wait_for_run(cluster: AirflowCluster, run_id: str, timeout: float) -> str:
    """The run's end state; an API call that times out on a loaded machine is asked again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = cluster.session.get(f"{cluster.base}/api/v2/dags/privacy_request/dagRuns/{run_id}", timeout=60)
            state = response.json().get("state") if response.ok else None
        except requests.RequestException:
            state = None
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise AssertionError(f"run {run_id} not finished after {timeout} s")
