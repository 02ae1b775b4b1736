"""A person's path through the UI, in headless Chromium (Debian's chromium and chromedriver): log into
Airflow, open Privacy requests, check the rows, open a request's page; screenshots go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from scripts.local_airflow import AirflowCluster
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
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
    shot(browser, "airflow-home")

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
