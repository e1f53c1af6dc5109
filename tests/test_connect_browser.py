"""The connect flow in a real browser: Debian's Chromium (headless, driven by Selenium through chromedriver) against
the live server and the real OAuth2 provider (tests/oauth_provider/).

With CONNECT_SCREENSHOTS=<directory> set, the pages are saved there as PNGs (the README's screenshots:
`CONNECT_SCREENSHOTS=docs/screenshots pytest tests/test_connect_browser.py`).
"""

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from connections.models import Connection
from tests.factories import make_integration
from tests.network import LocalServer, reply
from tests.oauth_provider import PASSWORD, USERNAME

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
    pytest.mark.django_db(transaction=True),
]
WAIT = 60  # generous: the machine is shared


@pytest.fixture
def browser(monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=720,760",
                # Belt and braces: no name but the local ones resolves, so nothing can leave the machine.
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.implicitly_wait(WAIT)  # a click does not wait for the page it leads to: finding an element of it does
    yield driver
    driver.quit()


def screenshot(driver, name):
    directory = os.environ.get("CONNECT_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"{name}.png"))


def wait_for_url(driver, prefix):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT).until(lambda d: d.current_url.startswith(prefix))
    return dict(parse_qsl(urlsplit(driver.current_url).query))


def find(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def click(driver, selector):
    find(driver, selector).click()


def type_into(driver, selector, text):
    field = find(driver, selector)
    field.clear()
    field.send_keys(text)


def verify_upstream(received):
    good = received.header("X-Api-Key") == "right-key"
    return reply(200 if good else 401, [("Content-Type", "application/json")], b"{}")


@pytest.fixture
def flow(alice, live_server, oauth_provider):
    """Alice's catalog (an OAuth2 integration at the provider, a key integration with `verify`) and a connect link
    whose flow ends at the live server's /echo/linked. Returns (connect URL, where the flow ends)."""
    with LocalServer(verify_upstream) as verify_server:
        make_integration(slug="provider", name="Provider CRM", base_url=f"{oauth_provider.url}/api",
                         auth=oauth_provider.catalog_auth())
        make_integration(slug="keyed", name="Keyed Helpdesk", base_url=verify_server.url,
                         auth={"scheme": "api_key", "name": "X-Api-Key", "verify": {"method": "GET", "path": "/me"}})
        alice.organization.allowed_redirect_origins = [live_server.url]
        alice.organization.save()
        done = f"{live_server.url}/echo/linked"
        session = alice.client.post("/api/v1/connect/sessions", {
            "end_user_id": "ada", "end_user_organization_name": "Ada Inc", "redirect_url": done}, format="json").json()
        yield session["connect_url"].replace("http://testserver", live_server.url), done


def sign_in_at_provider(driver):
    wait_for_url(driver, "http://127.0.0.1")
    type_into(driver, "#username", USERNAME)
    type_into(driver, "#password", PASSWORD)
    click(driver, "#sign-in")


def test_oauth2_sign_in_ends_with_a_public_token(browser, flow, alice):
    connect_url, done = flow
    browser.get(connect_url)
    assert "Provider CRM" in browser.page_source and "Keyed Helpdesk" in browser.page_source
    screenshot(browser, "connect-choose")
    click(browser, 'a[href$="/provider"]')
    sign_in_at_provider(browser)
    click(browser, 'input[name="allow"]')
    public_token = wait_for_url(browser, done)["public_token"]
    exchanged = alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()
    connection = Connection.objects.get(pk=exchanged["connection_id"])
    assert (connection.integration.slug, connection.end_user_id, connection.end_user_organization_name) == (
        "provider", "ada", "Ada Inc")


def test_the_key_form_refuses_a_wrong_key_then_takes_the_right_one(browser, flow, alice):
    connect_url, done = flow
    browser.get(connect_url)
    click(browser, 'a[href$="/keyed"]')
    type_into(browser, "#id_api_key", "wrong-key")
    click(browser, 'button[type="submit"]')
    assert "These credentials were refused" in find(browser, "#form-error").text
    screenshot(browser, "connect-key-form-refused")
    type_into(browser, "#id_api_key", "right-key")
    click(browser, 'button[type="submit"]')
    public_token = wait_for_url(browser, done)["public_token"]
    assert alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").json()["integration"] == "keyed"


def test_a_denied_consent_goes_back_with_access_denied(browser, flow):
    connect_url, done = flow
    browser.get(connect_url)
    click(browser, 'a[href$="/provider"]')
    sign_in_at_provider(browser)
    click(browser, 'input[value="Cancel"]')
    assert wait_for_url(browser, done)["error"] == "access_denied"
    assert not Connection.objects.exists()


def test_the_flow_works_by_keyboard_alone(browser, flow, alice):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def press(*keys):
        ActionChains(browser).send_keys(*keys).perform()

    connect_url, done = flow
    browser.get(connect_url)
    for _ in range(5):  # Tab to the key integration's link
        press(Keys.TAB)
        if (browser.switch_to.active_element.get_attribute("href") or "").endswith("/keyed"):
            break
    press(Keys.ENTER)
    wait_for_url(browser, f"{connect_url}/keyed")
    WebDriverWait(browser, WAIT).until(lambda d: d.switch_to.active_element.get_attribute("id") == "id_api_key")
    press("right-key", Keys.ENTER)  # the key field has the focus: type, then submit with Enter
    public_token = wait_for_url(browser, done)["public_token"]
    assert alice.client.get(f"/api/v1/connect/public-tokens/{public_token}").status_code == 200
