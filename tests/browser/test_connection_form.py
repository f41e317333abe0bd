"""The EngageLab Connection form in the real Airflow UI, driven in headless Chromium.

Starts ``airflow api-server`` on loopback (own AIRFLOW_HOME, SQLite, SimpleAuthManager with
every user an admin, ``[core] test_connection = Enabled``) from the interpreter running the
tests, so ``.venv`` checks Airflow 3.3 and ``.venv-3.0`` checks Airflow 3.0; the EngageLab
sandbox API runs in this process on 127.0.0.1 and the API server's hook talks to it.

Browser: Debian's ``/usr/bin/chromium`` + ``/usr/bin/chromedriver`` through selenium (no
browser download). Without them the module is skipped, unless ``ENGAGELAB_REQUIRE_BROWSER=1``
(CI), which turns the skip into a failure.

What differs between Airflow versions, and how the test handles it:

* Airflow 3.2+ builds the form from ``conn-fields``/``ui-field-behaviour`` in the provider
  info, 3.0/3.1 from the hook's ``get_ui_field_behaviour``/``get_connection_form_widgets``.
  The checks are the same.
* The UI's only Test button (3.1+) is in the Connections list. In Airflow 3.3.1-3.3.2 it posts
  ``port: 0`` for a connection without a port and the API answers 400 "The host or port to test
  differs from the stored connection" before the hook runs (apache/airflow#73298). The test
  recognises that answer (and that the sandbox saw no request), reports it as the Airflow bug,
  applies the documented workaround (store the port explicitly) and presses Test again.
* Airflow 3.0 has no Test button: the test calls the same REST endpoint the later UI calls,
  ``POST /api/v2/connections/test``, with the values the form saved.

Screenshots go to the test's temporary output directory; with
``ENGAGELAB_UPDATE_DOCS_SCREENSHOT=1`` the form screenshot is also copied to
``docs/connection-form.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import airflow
import pytest
import requests

from airflow_provider_engagelab._provider_info import CONN_FIELDS
from airflow_provider_engagelab.core.connection import resolve_connection
from airflow_provider_engagelab.core.settings import ConnectionSettings
from airflow_provider_engagelab.testing.sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).parent))
from _ui_test_call import AIRFLOW_PORT_BUG, AIRFLOW_PORT_BUG_REF, UiTestCall

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("ENGAGELAB_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ENGAGELAB_CHROMEDRIVER", "/usr/bin/chromedriver"))
REQUIRE_BROWSER = os.environ.get("ENGAGELAB_REQUIRE_BROWSER") == "1"
REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "connection-form.png"

API_KEY = "sandbox-key"
API_SECRET = "sandbox-secret"
WRONG_SECRET = "definitely-not-the-secret"


def _browser_missing_reason() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (
                f"{path} is missing: install Debian's browser with "
                "`apt-get install -y chromium chromium-driver` (scripts/ci-system-deps.sh)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing: pip install selenium"
    return None


_MISSING = _browser_missing_reason()
if _MISSING:
    if REQUIRE_BROWSER:
        pytest.fail(f"ENGAGELAB_REQUIRE_BROWSER=1 but {_MISSING}", pytrace=False)
    pytest.skip(_MISSING, allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402


# ----------------------------------------------------------------------------------- servers
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AirflowServer:
    """A running ``airflow api-server`` and a REST client for it."""

    url: str
    log: Path
    version: str

    def _token(self) -> str:
        resp = requests.get(f"{self.url}/auth/token", timeout=30)
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the REST API as the (all-admin) simple-auth user."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER=(
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    airflow_cli = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.run(
        [airflow_cli, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout}\n{migrate.stderr}"

    port = _free_port()
    log = home / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [airflow_cli, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = AirflowServer(f"http://127.0.0.1:{port}", log, airflow.__version__)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"airflow api-server exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if requests.get(f"{server.url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not answer within 180s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(api_key=API_KEY, api_secret=API_SECRET, port=0) as sb:
        yield sb


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-output")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    # Network events, to read what the UI sent to /connections/test and what it got back.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.implicitly_wait(0)
    try:
        yield drv
    finally:
        drv.quit()


# ----------------------------------------------------------------------------------- helpers
def _wait(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``probe`` until it returns something truthy (a condition, not a timing assert)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (NoSuchElementException, WebDriverException) as exc:
            value, last_error = None, exc
        if value:
            return value
        time.sleep(0.25)
    hint = f" (last error: {last_error})" if last_error else ""
    raise AssertionError(f"timed out waiting for {what}{hint}")


def _displayed(elements: list[WebElement]) -> list[WebElement]:
    return [el for el in elements if el.is_displayed()]


def _dialogs(driver: webdriver.Chrome) -> list[WebElement]:
    return _displayed(driver.find_elements(By.CSS_SELECTOR, "[role=dialog]"))


def _goto_connections(driver: webdriver.Chrome, server: AirflowServer) -> None:
    """Open the Connections list.

    The first visit has no token yet: the UI goes through the simple auth manager's login,
    which Airflow 3.1 ends on the home page instead of the page asked for (3.0, 3.2 and 3.3
    return to it). Once logged in, asking again lands on the list.
    """
    url = f"{server.url}/connections"
    driver.get(url)

    def on_the_list() -> bool:
        if driver.current_url.rstrip("/") == server.url:  # the login ended on the home page
            driver.get(url)
        return bool(driver.current_url.startswith(url))

    _wait("the Connections page", on_the_list)


def _open_add_form(driver: webdriver.Chrome, server: AirflowServer) -> WebElement:
    _goto_connections(driver, server)
    button = _wait(
        "the Add Connection button",
        lambda: _displayed(driver.find_elements(By.XPATH, "//button[contains(., 'Add Connection')]")),
    )[0]
    button.click()
    return _wait("the Add Connection dialog", lambda: _dialogs(driver))[0]


def _pick_type(dialog: WebElement, hook_name: str) -> None:
    # Disabled until the UI has the connection types (/ui/connections/hook_meta): a fresh API
    # server imports every provider's hooks for that first answer, slow on a busy machine.
    combo = _wait("the Connection Type list to load", lambda: [
        c for c in dialog.find_elements(By.CSS_SELECTOR, "input[role=combobox]") if c.is_enabled()
    ], timeout=120)[0]
    combo.send_keys(hook_name)
    option = (
        f"//*[contains(@id, 'react-select') and contains(@id, 'option') and normalize-space()='{hook_name}']"
    )
    _wait(f"the {hook_name!r} option", lambda: dialog.parent.find_elements(By.XPATH, option))
    combo.send_keys(Keys.ENTER)
    _wait("the standard fields of the form", lambda: _displayed(dialog.find_elements(By.NAME, "login")))


def _open_section(dialog: WebElement, title: str) -> None:
    trigger = dialog.find_element(
        By.XPATH, f".//button[starts-with(@id, 'accordion') and normalize-space()='{title}']"
    )
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    _wait(f"the {title!r} section to open", lambda: trigger.get_attribute("aria-expanded") == "true")


def _label_texts(dialog: WebElement) -> list[str]:
    texts = []
    for label in _displayed(dialog.find_elements(By.TAG_NAME, "label")):
        text = label.text.replace("*", "").strip()
        if text:
            texts.append(text)
    return texts


def _input(dialog: WebElement, name: str) -> WebElement:
    return dialog.find_element(By.NAME, name)


def _fill(element: WebElement, value: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(value)


def _network_events(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]


def _toasts(driver: webdriver.Chrome) -> str:
    roots = driver.find_elements(By.CSS_SELECTOR, "[data-scope=toast][data-part=root]")
    return "\n---\n".join(el.text for el in roots if el.text.strip())


def _test_row_button(driver: webdriver.Chrome, conn_id: str) -> WebElement | None:
    row = _wait(
        f"the row of {conn_id!r} in the Connections list",
        lambda: driver.find_elements(By.XPATH, f"//tr[td[normalize-space()='{conn_id}']]"),
    )[0]
    buttons = row.find_elements(By.CSS_SELECTOR, "button[aria-label='Test Connection']")
    return buttons[0] if buttons else None


def _press_list_test(driver: webdriver.Chrome, server: AirflowServer, conn_id: str) -> UiTestCall | None:
    """Press the Test button of ``conn_id`` in the Connections list; ``None`` if the UI has none."""
    _goto_connections(driver, server)
    button = _test_row_button(driver, conn_id)
    if button is None:
        return None
    _network_events(driver)  # drop what came before
    for toast_close in driver.find_elements(By.CSS_SELECTOR, "[data-scope=toast] [data-part=close-trigger]"):
        toast_close.click()
    button.click()
    requests_sent: dict[str, dict[str, Any]] = {}
    seen: list[dict[str, Any]] = []

    def finished() -> tuple[str, int] | None:
        for event in _network_events(driver):
            seen.append(event)
            params = event.get("params", {})
            if event["method"] == "Network.requestWillBeSent" and params["request"]["url"].endswith(
                "/api/v2/connections/test"
            ):
                requests_sent[params["requestId"]] = params["request"]
        for event in seen:
            params = event.get("params", {})
            if event["method"] == "Network.loadingFinished" and params.get("requestId") in requests_sent:
                rid = params["requestId"]
                status = next(
                    e["params"]["response"]["status"]
                    for e in seen
                    if e["method"] == "Network.responseReceived" and e["params"]["requestId"] == rid
                )
                return rid, int(status)
        return None

    rid, status = _wait("the UI's POST /api/v2/connections/test", finished, timeout=90)
    body = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": rid})["body"]
    try:
        response: Any = json.loads(body)
    except ValueError:
        response = body
    sent = json.loads(requests_sent[rid].get("postData") or "{}")
    toast = _wait("the Test result message", lambda: _toasts(driver), timeout=30)
    return UiTestCall(status, sent, response, toast)


def _rest_test(server: AirflowServer, conn_id: str, password: str) -> dict[str, Any]:
    """What Airflow 3.0's UI would do if it had a Test button: the saved values + the secret."""
    saved = server.api("GET", f"/connections/{conn_id}").json()
    body = {k: saved[k] for k in ("connection_id", "conn_type", "host", "login", "schema", "port", "extra")}
    body["password"] = password
    resp = server.api("POST", "/connections/test", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _store_port(server: AirflowServer, conn_id: str, port: int) -> None:
    """The workaround for apache/airflow#73298: give the connection an explicit port."""
    resp = server.api(
        "PATCH",
        f"/connections/{conn_id}",
        params={"update_mask": "port"},
        json={"connection_id": conn_id, "conn_type": "engagelab", "port": port},
    )
    assert resp.status_code == 200, resp.text


def _add_via_form(
    driver: webdriver.Chrome, server: AirflowServer, conn_id: str, host: str, secret: str
) -> WebElement:
    dialog = _open_add_form(driver, server)
    _fill(_input(dialog, "connection_id"), conn_id)
    _pick_type(dialog, "EngageLab")
    _fill(_input(dialog, "host"), host)
    _fill(_input(dialog, "login"), API_KEY)
    _fill(_input(dialog, "password"), secret)
    return dialog


def _save(
    driver: webdriver.Chrome, server: AirflowServer, dialog: WebElement, conn_id: str
) -> dict[str, Any]:
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Save']").click()
    _wait("the dialog to close", lambda: not _dialogs(driver))
    resp = _wait(f"{conn_id!r} to be stored", lambda: (
        r if (r := server.api("GET", f"/connections/{conn_id}")).status_code == 200 else None
    ))
    return dict(resp.json())


def _ui_test(
    driver: webdriver.Chrome, server: AirflowServer, sandbox: Sandbox, conn_id: str, password: str,
    record_property: Callable[[str, object], None],
) -> tuple[bool, str, str]:
    """Test ``conn_id`` the way this Airflow's UI allows; return (status, message, how)."""
    before = sandbox.counters()["requests"]
    call = _press_list_test(driver, server, conn_id)
    if call is None:
        result = _rest_test(server, conn_id, password)
        return bool(result["status"]), str(result["message"]), "REST (this Airflow UI has no Test button)"
    if call.is_airflow_port_bug:
        # Airflow, not the hook: the request never reached the hook, so never the API.
        assert sandbox.counters()["requests"] == before, "the hook ran although Airflow answered 400"
        assert "Bad Request" in call.toast or AIRFLOW_PORT_BUG in call.toast, call.toast
        note = (
            f"Airflow {server.version}: the list's Test button sent port=0 and Airflow answered 400 "
            f"{AIRFLOW_PORT_BUG!r} before the hook ran ({AIRFLOW_PORT_BUG_REF}); "
            "retrying with the connection's port stored explicitly"
        )
        warnings.warn(note, stacklevel=1)
        record_property("airflow_bug", note)
        _store_port(server, conn_id, sandbox.port)
        call = _press_list_test(driver, server, conn_id)
        assert call is not None
    assert call.hook_ran, (
        f"Airflow rejected the test before the hook ran: HTTP {call.status} {call.response!r} "
        f"(request: {call.request!r})"
    )
    how = f"UI Test button; toast: {call.toast!r}"
    return bool(call.response["status"]), str(call.response["message"]), how


# ------------------------------------------------------------------------------------- tests
def test_form_shows_the_engagelab_fields(
    driver: webdriver.Chrome, airflow_server: AirflowServer, sandbox: Sandbox, output_dir: Path
) -> None:
    dialog = _open_add_form(driver, airflow_server)
    _fill(_input(dialog, "connection_id"), "engagelab_default")
    _pick_type(dialog, "EngageLab")

    labels = _label_texts(dialog)
    standard = {text.lower() for text in labels} - {"connection id", "connection type"}
    assert standard == {"description", "host", "api key", "api secret"}, labels
    for name in ("schema", "port"):
        assert not _displayed(dialog.find_elements(By.NAME, name)), f"{name} is shown"
    assert _input(dialog, "host").get_attribute("placeholder") == "https://ma-api.engagelab.com"
    assert _input(dialog, "password").get_attribute("type") == "password"

    # The empty form, placeholders showing: the picture docs/troubleshooting.md uses.
    shot = output_dir / f"connection-form-airflow-{airflow_server.version}.png"
    dialog.screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("ENGAGELAB_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)

    _open_section(dialog, "Extra Fields")
    for key, spec in CONN_FIELDS.items():
        field = _input(dialog, f"element_{key}")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        _wait(f"extra field {key!r} ({spec['label']!r})", lambda f=field, s=spec: (
            f.is_displayed() and s["label"] in dialog.text and s["description"] in dialog.text
        ))
    dialog.screenshot(str(output_dir / f"connection-form-extras-airflow-{airflow_server.version}.png"))


def test_saved_form_values_make_a_valid_connection(
    driver: webdriver.Chrome, airflow_server: AirflowServer, sandbox: Sandbox
) -> None:
    dialog = _add_via_form(driver, airflow_server, "engagelab_ui", sandbox.url, API_SECRET)
    saved = _save(driver, airflow_server, dialog, "engagelab_ui")
    assert saved["conn_type"] == "engagelab"
    assert saved["host"] == sandbox.url
    assert saved["login"] == API_KEY
    assert saved["port"] is None and not saved["schema"]
    extra = json.loads(saved["extra"] or "{}")
    assert set(CONN_FIELDS) <= set(extra), extra
    # What the form stored is what the hook accepts: the defaults, parsed by the core.
    resolved = resolve_connection(
        host=saved["host"], schema=saved["schema"], port=saved["port"], login=saved["login"],
        password=API_SECRET, extra=extra,
    )
    assert resolved.base_url == sandbox.url
    assert resolved.settings == ConnectionSettings()


def test_test_button_reports_success_against_the_sandbox(
    driver: webdriver.Chrome, airflow_server: AirflowServer, sandbox: Sandbox, output_dir: Path,
    record_property: Callable[[str, object], None],
) -> None:
    sandbox.reset_counters()
    ok, message, how = _ui_test(driver, airflow_server, sandbox, "engagelab_ui", API_SECRET, record_property)
    record_property("test_connection_success", f"{how}: {message}")
    driver.save_screenshot(str(output_dir / f"test-success-airflow-{airflow_server.version}.png"))
    assert ok, message
    assert message == f"Connected to {sandbox.url} with API Key '{API_KEY}'"
    counters = sandbox.counters()
    assert counters["requests"] >= 1
    assert counters["by_status"].get(200, 0) + counters["by_status"].get("200", 0) >= 1, counters


def test_test_button_reports_a_wrong_secret_clearly(
    driver: webdriver.Chrome, airflow_server: AirflowServer, sandbox: Sandbox, output_dir: Path,
    record_property: Callable[[str, object], None],
) -> None:
    dialog = _add_via_form(driver, airflow_server, "engagelab_wrong_secret", sandbox.url, WRONG_SECRET)
    _save(driver, airflow_server, dialog, "engagelab_wrong_secret")
    sandbox.reset_counters()
    ok, message, how = _ui_test(
        driver, airflow_server, sandbox, "engagelab_wrong_secret", WRONG_SECRET, record_property
    )
    record_property("test_connection_failure", f"{how}: {message}")
    driver.save_screenshot(str(output_dir / f"test-failure-airflow-{airflow_server.version}.png"))
    assert not ok
    assert "Authentication failed" in message and "40050" in message, message
    assert WRONG_SECRET not in message
    if how.startswith("UI"):
        assert "Authentication failed" in how and WRONG_SECRET not in how
    counters = sandbox.counters()
    assert counters["by_status"].get(401, 0) + counters["by_status"].get("401", 0) >= 1, counters
