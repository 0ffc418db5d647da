"""The Content-Security-Policy in a real browser (Debian's Chromium driven by Playwright).

Every page the project serves (the chat, its sign-in and registration pages, the admin,
the API docs) runs under the strict policy with no violation at all: Chromium reports
each blocked script, style, image or connection as a `securitypolicyviolation` event
and a console message, and these tests collect both from the first moment of every
document. A script or handler injected into the page is blocked.

Browser users are registered through the server (see tests/e2e/test_web.py); a staff
user is promoted in the database before the browser starts (no ORM calls while
Playwright's loop runs on this thread).
"""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright

from tests.e2e.test_web import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PASSWORD,
    PNG,
    WAIT_MS,
    connected,
    messages_with,
    register,
    send,
    sign_in,
    unique,
)
from tests.live import LiveServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

# Every violation of the document, as "directive blocked-uri source:line", from before
# the page's first script (Playwright's init scripts are not subject to the policy).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__csp.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`
  );
});
"""

Browse = Callable[[], Page]


def policy_of(response: Any) -> str:
    """The page's policy, checked to be the strict one (no inline script or style)."""
    assert response is not None
    policy = response.headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    assert directives.get("script-src") == ["'self'"], policy
    assert directives.get("style-src") == ["'self'"], policy
    assert directives.get("object-src") == ["'none'"], policy
    assert directives.get("base-uri") == ["'none'"], policy
    assert directives.get("frame-ancestors") == ["'none'"], policy
    return policy


def goto(page: Page, url: str) -> str:
    return policy_of(page.goto(url))


def violations(page: Page) -> list[str]:
    return page.evaluate("window.__csp")


# ----------------------------------------------------------------------- fixtures


@pytest.fixture
def browse(general) -> Iterator[Browse]:
    """`browse()`: a fresh browser profile whose pages record policy violations. At the
    end, no page may have reported one, in an event or on the console, nor thrown."""
    reports: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def open_() -> Page:
            context = browser.new_context(viewport=DESKTOP)
            context.set_default_timeout(WAIT_MS)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            page.on(
                "console",
                lambda message: (
                    reports.append(f"console: {message.text}")
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            page.on("pageerror", lambda error: reports.append(f"pageerror: {error}"))
            return page

        try:
            yield open_
        finally:
            browser.close()
    assert not reports, "\n".join(reports)


@pytest.fixture
def staff(chat_server: LiveServer, general) -> str:
    """A superuser's username (password PASSWORD), registered through the server."""
    from accounts.models import User

    username = unique("root")
    register(chat_server, username)
    User.objects.filter(username=username).update(is_staff=True, is_superuser=True)
    return username


def keep(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot, for a person to look at (UPDATE_SCREENSHOTS=1 keeps it in /tmp/csp)."""
    folder = Path("/tmp/csp") if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


# -------------------------------------------------------------------------- tests


def test_chat_page_and_its_forms_run_under_the_policy(chat_server, browse, tmp_path):
    page = browse()
    goto(page, f"{chat_server.url}/register/")
    expect(page.locator("form#register-form")).to_be_visible()
    username = unique("csp")
    register(chat_server, username)
    goto(page, f"{chat_server.url}/login/")
    sign_in(page, chat_server, username)
    policy = goto(page, f"{chat_server.url}/")
    # The page's own socket is named (older Safari does not let 'self' cover ws:).
    assert re.search(r"connect-src 'self' ws://127\.0\.0\.1:\d+ wss://127\.0\.0\.1:\d+", policy)
    connected(page)  # ES modules from /static/chat/ ran; the socket is open

    send(page, "under a strict policy")
    expect(messages_with(page, "under a strict policy")).to_have_count(1)
    page.locator("#file-input").set_input_files(
        files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}]
    )
    expect(page.locator(".pending-attachment")).to_have_count(1)
    send(page, "a picture")
    image = messages_with(page, "a picture").locator(".attachment img")
    expect(image).to_have_count(1)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 4", arg=image.element_handle()
    )
    # Styled by the stylesheet: the sidebar is laid out beside the conversation.
    assert page.locator("#sidebar").evaluate("n => getComputedStyle(n).display") != "inline"
    keep(page, tmp_path, "chat")
    assert violations(page) == []


def test_injected_inline_script_handler_and_style_are_blocked(chat_server, general):
    username = unique("xss")
    register(chat_server, username)
    injected = (
        "<script>window.__injected = 1</script>"
        '<img id="bad-img" src="/static/chat/none.png" onerror="window.__handler = 1">'
        '<p id="styled" style="color: rgb(255, 0, 0)">styled</p>'
        '<a id="js-link" href="javascript:window.__link = 1">link</a>'
    )

    def tamper(route: Route) -> None:
        # The server's answer, its headers kept, with markup injected as a template flaw
        # would let through.
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        route.fulfill(
            response=response,
            headers=headers,
            body=response.text().replace("</body>", f"{injected}</body>"),
        )

    with sync_playwright() as p:
        # A document Playwright fulfils counts as from the public internet for Chromium's
        # Local Network Access checks, which would then refuse its socket to 127.0.0.1.
        args = [*CHROMIUM_ARGS, "--disable-features=LocalNetworkAccessChecks"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            context = browser.new_context(viewport=DESKTOP)
            context.set_default_timeout(WAIT_MS)
            context.add_init_script(RECORD_VIOLATIONS)
            page = context.new_page()
            sign_in(page, chat_server, username)
            page.route(f"{chat_server.url}/", tamper)
            goto(page, f"{chat_server.url}/")
            connected(page)  # the page's own modules still run, and its socket connects
            page.locator("#js-link").click()
            page.wait_for_function("window.__csp.length >= 4")
            ran = page.evaluate("[window.__injected, window.__handler, window.__link]")
            assert ran == [None, None, None]
            color = page.locator("#styled").evaluate("n => getComputedStyle(n).color")
            assert color != "rgb(255, 0, 0)"
            blocked = {line.split()[0] for line in violations(page)}
            assert {"script-src-elem", "script-src-attr", "style-src-attr"} <= blocked, blocked
        finally:
            browser.close()


def test_admin_runs_under_the_policy(chat_server, staff, browse, tmp_path):
    page = browse()
    goto(page, f"{chat_server.url}/admin/login/")
    page.locator("#id_username").fill(staff)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    expect(page.locator("#site-name")).to_contain_text("Chat server administration")
    goto(page, f"{chat_server.url}/admin/")
    changelists = page.locator("#content-main th[scope=row] a").evaluate_all(
        "links => links.map(a => a.href)"
    )
    assert any(url.endswith("/admin/rooms/room/") for url in changelists), changelists
    for url in changelists:
        goto(page, url)
        expect(page.locator("#changelist, #content-main")).not_to_have_count(0)
        assert violations(page) == [], url
        add = page.locator("a.addlink")
        if add.count():
            goto(page, add.first.evaluate("a => a.href"))
            expect(page.locator("#content-main form")).to_have_count(1)
            assert violations(page) == [], f"{url} add"

    # The rooms changelist: its typed filter styled by the project's stylesheet, and an
    # action (the JavaScript of the action bar) leading to the announcement form.
    goto(page, f"{chat_server.url}/admin/rooms/room/")
    keep(page, tmp_path, "admin-rooms")
    page.locator("#result_list tbody input.action-select").first.check()
    page.locator("select[name=action]").select_option("post_announcement")
    page.locator("button[name=index]").click()
    expect(page.locator("input[value='Post announcement']")).to_be_visible()
    assert violations(page) == []
    goto(page, f"{chat_server.url}/admin/messaging/message/")
    filters = page.locator("form.input-filter")
    expect(filters).not_to_have_count(0)
    assert filters.first.evaluate("n => getComputedStyle(n).padding") == "4px 10px"
    keep(page, tmp_path, "admin-messages")
    assert violations(page) == []


def test_api_docs_render_under_the_policy(chat_server, browse, tmp_path):
    page = browse()
    goto(page, f"{chat_server.url}/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 20
    # drf-spectacular's inline rules, now a file: the page background is theirs.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(250, 250, 250)"
    keep(page, tmp_path, "api-docs")
    # "Try it out" calls the API from the page (connect-src): unauthenticated, a 401.
    page.locator('.opblock-summary-path[data-path="/api/stats/"]').click()
    page.locator("button.try-out__btn").click()
    page.locator("button.execute").click()
    status = page.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text(re.compile(r"^\s*401"))
    assert violations(page) == []


def test_every_html_answer_carries_the_policy(chat_server):
    for path in ("/", "/login/", "/register/", "/admin/login/", "/api/docs/"):
        answer = httpx.get(f"{chat_server.url}{path}", follow_redirects=True, timeout=10)
        assert answer.headers["content-type"].startswith("text/html"), path
        policy_of(answer)
