"""The dashboard at ``/``, end to end: a real ``mayfly server``, real tasks in Docker, headless Debian Chromium.

Set ``MAYFLY_DOCS_SCREENSHOT=1`` to also refresh ``docs/dashboard.png`` (the README's picture) from this run.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mayfly.cli.context import resolve_runtime
from mayfly.core import breaker
from mayfly.core.app import Mayfly
from mayfly.core.config import Home, Limits

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
DOCS_PNG = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
#: Prints a line a second; the test sees the first lines arrive while the task still runs.
TICKER = "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 1; done; echo done ticking"
#: Generous: Docker may pull nothing, but a loaded CI machine starts containers slowly.
WAIT_MS = 60_000


@dataclass(frozen=True)
class Site:
    url: str
    token: str
    bearer: dict[str, str]
    schedule_id: str
    #: The token of a second project on the same server.
    other_token: str
    home: Path
    project_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, busybox_image: str, start_server: Any) -> Iterator[Site]:
    """A server with codes ``hello``, ``ticker`` and ``fails``, a second target ``spare`` and one schedule."""
    with start_server(tmp_path_factory.mktemp("dashboard"), "dash") as srv:
        mf = Mayfly(Home(srv.home), resolve_runtime)
        try:
            mf.targets.add("spare", "docker", {}, capacity=3, embedded_runner=False)
            _, other_token = mf.tokens.create(mf.projects.ensure("other").id, name="other")
        finally:
            mf.close()
        with httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as client:
            for name, command in (("hello", "echo hello; sleep 3"), ("ticker", TICKER), ("fails", "exit 3")):
                r = client.post("/v1/codes", json={"name": name, "image": busybox_image, "command": command})
                assert r.status_code == 201, r.text
            r = client.post(
                "/v1/schedules", json={"code_name": "hello", "cron": "0 3 * * *", "tz": "Europe/Berlin", "label": "x"}
            )
            assert r.status_code == 201, r.text
            yield Site(srv.url, srv.token, srv.bearer, r.json()["id"], other_token, srv.home, srv.project_id)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: scripts/bootstrap --test installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    yield pg
    expect.set_options(timeout=5_000)  # Playwright's default, for any other test in this process
    context.close()


def _login(page: Page, site: Site, hash_: str = "") -> None:
    page.goto(f"{site.url}/{hash_}")
    page.fill("#token", site.token)
    page.click("#login-submit")
    expect(page.locator("#project-name")).to_have_text("dash")


def _queue(site: Site, code: str, **options: Any) -> str:
    r = httpx.post(f"{site.url}/v1/tasks", headers=site.bearer, json={"code_name": code, **options}, timeout=30)
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


def _wait_status(site: Site, task_id: str, status: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        r = httpx.get(f"{site.url}/v1/tasks/{task_id}", headers=site.bearer, timeout=30)
        if r.json()["status"] == status:
            return
        time.sleep(0.2)
    pytest.fail(f"task {task_id} did not reach {status}")


def test_the_page_and_its_files_are_served_with_a_strict_policy(site: Site) -> None:
    r = httpx.get(f"{site.url}/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml")):
        r = httpx.get(f"{site.url}/dashboard/static/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(kind)
    assert httpx.get(f"{site.url}/dashboard/static/..%2Fdashboard.py").status_code == 404
    assert httpx.get(f"{site.url}/dashboard/static/nope.js").status_code == 404


def test_the_dashboard_reads_need_the_token_and_stay_in_the_project(site: Site) -> None:
    for path in ("/dashboard/api/tasks?target=local", "/dashboard/api/schedules/next"):
        assert httpx.get(f"{site.url}{path}").status_code == 401
        bad = {"Authorization": "Bearer mfy_not_a_token"}
        assert httpx.get(f"{site.url}{path}", headers=bad).status_code == 401
    spare = _queue(site, "hello", target="spare", delay=3600)
    r = httpx.get(f"{site.url}/dashboard/api/tasks", params={"target": "spare"}, headers=site.bearer)
    assert r.status_code == 200, r.text
    assert [t["id"] for t in r.json()["tasks"]] == [spare]
    other = {"Authorization": f"Bearer {site.other_token}"}
    r = httpx.get(f"{site.url}/dashboard/api/tasks", params={"target": "spare"}, headers=other)
    assert r.status_code == 200, r.text
    assert r.json()["tasks"] == []
    r = httpx.get(f"{site.url}/dashboard/api/schedules/next", headers=other)
    assert r.json() == {"next": {}}
    r = httpx.get(f"{site.url}/dashboard/api/schedules/next", params={"count": 3}, headers=site.bearer)
    runs = r.json()["next"][site.schedule_id]
    assert len(runs) == 3
    assert runs == sorted(runs)
    httpx.post(f"{site.url}/v1/tasks/{spare}/cancel", headers=site.bearer)


def test_a_wrong_token_shows_the_error_and_stays_on_login(site: Site, page: Page) -> None:
    page.goto(site.url)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", "mfy_wrong")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).not_to_be_empty()
    expect(page.locator("#main")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('mayfly.token')") is None


def test_a_token_revoked_while_logged_in_returns_to_login_with_the_message(site: Site, page: Page) -> None:
    mf = Mayfly(Home(site.home), resolve_runtime)
    try:
        token, secret = mf.tokens.create(site.project_id, name="short-lived")
        page.goto(site.url)
        page.fill("#token", secret)
        page.click("#login-submit")
        expect(page.locator("#project-name")).to_have_text("dash")
        expect(page.locator("#tasks table")).to_be_visible()
        mf.tokens.revoke(site.project_id, token.id)
    finally:
        mf.close()
    # The next poll of the task list is refused: back to the login screen, saying why.
    expect(page.locator("#login-error")).to_contain_text("Logged out")
    expect(page.locator("#main")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('mayfly.token')") is None


def test_a_bad_token_left_in_the_tab_returns_to_login_on_load(site: Site, page: Page) -> None:
    _login(page, site)
    page.evaluate("sessionStorage.setItem('mayfly.token', 'mfy_expired')")
    page.reload()
    expect(page.locator("#login-error")).to_contain_text("Logged out")
    expect(page.locator("#main")).to_be_hidden()


def test_a_queued_task_appears_and_turns_complete_without_reload(site: Site, page: Page) -> None:
    _login(page, site)
    page.evaluate("window.notReloaded = true")
    task_id = _queue(site, "hello")
    row = page.locator(f'tr[data-task="{task_id}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text(re.compile("queued|preparing|running"))
    expect(row.locator(".badge")).to_have_text("complete")
    assert page.evaluate("window.notReloaded") is True


def test_the_log_follows_live_and_the_detail_shows_the_end(site: Site, page: Page) -> None:
    _login(page, site)
    task_id = _queue(site, "ticker")
    page.goto(f"{site.url}/#/tasks/{task_id}")
    log = page.locator("#log")
    expect(log).to_contain_text("tick 1")
    # The first lines are on screen while the task still runs: they were streamed, not read at the end.
    assert "done ticking" not in log.inner_text()
    expect(page.locator("#task-status .badge")).not_to_have_text("complete")
    expect(log).to_contain_text("tick 4")
    expect(log).to_contain_text("done ticking")
    expect(page.locator("#log-state")).to_have_text("ended")
    expect(page.locator("#task-status .badge")).to_have_text("complete")
    expect(page.locator("#task-fields")).to_contain_text("Exit code")
    expect(page.locator("#task-fields")).to_contain_text("0.000000 USD")  # local Docker without a price
    expect(page.locator("#task-attempts")).to_contain_text("local")
    expect(page.locator("#task-events")).not_to_contain_text("No events yet")
    expect(page.locator("#retry")).to_be_visible()
    expect(page.locator("#cancel")).to_be_hidden()
    page.click("#retry")
    expect(page).not_to_have_url(f"{site.url}/#/tasks/{task_id}")
    expect(page.locator("#task-fields")).to_contain_text(task_id)  # "Retry of"


def test_filters_narrow_the_list(site: Site, page: Page) -> None:
    failed = _queue(site, "fails")
    held = _queue(site, "hello", target="spare", delay=3600)
    _wait_status(site, failed, "error")
    _login(page, site)
    rows = page.locator("#tasks tbody tr[data-task]")
    expect(page.locator(f'tr[data-task="{held}"]')).to_be_visible()

    page.select_option("#filter-status", "error")
    expect(page.locator(f'tr[data-task="{held}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-task="{failed}"]')).to_be_visible()
    for status in rows.locator(".badge").all_inner_texts():
        assert status == "error"

    page.select_option("#filter-status", "")
    page.select_option("#filter-code", "fails")
    expect(page.locator(f'tr[data-task="{held}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-task="{failed}"]')).to_be_visible()

    page.select_option("#filter-code", "")
    page.select_option("#filter-target", "spare")
    expect(page.locator(f'tr[data-task="{failed}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-task="{held}"]')).to_be_visible()
    assert "target=spare" in page.url
    httpx.post(f"{site.url}/v1/tasks/{held}/cancel", headers=site.bearer)
    expect(page.locator(f'tr[data-task="{held}"] .badge')).to_have_text("cancelled")


def test_codes_schedules_and_targets_show_real_data(site: Site, page: Page, tmp_path: Path) -> None:
    held = _queue(site, "hello", target="spare", delay=3600)
    _login(page, site, "#/codes")
    for name in ("hello", "ticker", "fails"):
        expect(page.locator(f'tr[data-code="{name}"]')).to_be_visible()
    page.click('tr[data-code="ticker"] a')
    expect(page.locator('#revisions tr[data-rev="1"]')).to_contain_text("tick")

    page.click('nav a[data-view="schedules"]')
    sched = page.locator(f'tr[data-schedule="{site.schedule_id}"]')
    expect(sched).to_contain_text("cron 0 3 * * * (Europe/Berlin)")
    expect(sched.locator(".next-runs div")).to_have_count(3)

    # The spare target's launches failed for lack of capacity: its breaker is open (docs/placement.md).
    mf = Mayfly(Home(site.home), resolve_runtime)
    try:
        with mf.store.write() as conn:
            breaker.failed(conn, "spare", "capacity", "no capacity (test)", time.time(), Limits(breaker_failures=1))
    finally:
        mf.close()
    page.click('nav a[data-view="targets"]')
    spare = page.locator('tr[data-target="spare"]')
    expect(spare.locator(".breaker")).to_contain_text("open until")
    expect(spare.locator(".breaker")).to_contain_text("(capacity)")
    expect(page.locator('tr[data-target="local"] .breaker')).to_have_text("closed")
    expect(spare.locator(".running-count")).to_have_text("0 / 3 running")
    expect(spare.locator(".queued-count")).to_have_text("1")
    expect(page.locator('tr[data-target="local"]')).to_be_visible()
    httpx.post(f"{site.url}/v1/tasks/{held}/cancel", headers=site.bearer)
    expect(spare.locator(".queued-count")).to_have_text("0")

    page.click('nav a[data-view="tasks"]')
    expect(page.locator("#tasks tbody tr[data-task]").first).to_be_visible()
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=False)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000
    if os.environ.get("MAYFLY_DOCS_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_PNG)


def test_text_from_the_api_is_shown_as_text_never_as_html(site: Site, page: Page) -> None:
    label = '<img src=x onerror="window.pwned=1">'
    payload = '{"html": "<script>window.pwned=2</script>"}'
    held = _queue(site, "hello", target="spare", delay=3600, label=label, payload=payload)
    _login(page, site)
    row = page.locator(f'tr[data-task="{held}"]')
    expect(row).to_contain_text(label)
    assert row.locator("img").count() == 0
    row.locator("a").click()
    expect(page.locator("#task-fields")).to_contain_text("<script>window.pwned=2</script>")
    assert page.locator("#task-fields script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.click("#cancel")
    expect(page.locator("#task-status .badge")).to_have_text("cancelled")
    expect(page.locator("#retry")).to_be_visible()


def test_show_more_reaches_past_the_first_page(site: Site, page: Page) -> None:
    r = httpx.post(
        f"{site.url}/v1/tasks/bulk",
        headers=site.bearer,
        json={"code_name": "fails", "payloads": [{"n": i} for i in range(60)], "delay": 3600, "target": "spare"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    oldest = r.json()["tasks"][0]["id"]
    _login(page, site)
    rows = page.locator("#tasks tbody tr[data-task]")
    expect(rows).to_have_count(50)
    expect(page.locator(f'tr[data-task="{oldest}"]')).to_have_count(0)
    page.click("#more")
    expect(page.locator(f'tr[data-task="{oldest}"]')).to_be_visible()
    assert "limit=100" in page.url
    assert httpx.post(f"{site.url}/v1/codes/fails/cancel_all", headers=site.bearer).status_code == 200
