"""Debian's Chromium driven by Playwright (through executable_path: Playwright's own download fails here)."""

import os
import shutil
import uuid

from tests.clients import register
from tests.realstack import PROJECT_ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
WAIT_MS = 15_000  # what every Playwright action and expect waits, on a busy machine


def chromium_path():
    """Return the Chromium to drive (CHROMIUM, else chromium on PATH), or None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


MAX_RENDERED = 300  # the most message items static/js/timeline.js keeps in the DOM


def expect_api():
    """Return Playwright's expect, waiting WAIT_MS (imported here: the unit tests run without Playwright)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def log_in_through_the_form(page, username, password="correct horse"):
    """Log in on /login and wait until the chat page is connected and shows general."""
    expect = expect_api()
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("connected")
    expect(page.locator("#room-title")).to_have_text("general")


def open_room(page, room):
    """Show a room of the page's "my rooms", joining it through the room browser first if it is not one."""
    expect = expect_api()
    show_rooms_tab(page)
    button = page.locator("#rooms button", has_text=room)
    if button.count() == 0:
        join_room(page, room)
    else:
        button.click()
    expect(page.locator("#room-title")).to_have_text(room)


def join_room(page, room):
    """Join a public room through the room browser (which shows it)."""
    expect = expect_api()
    show_rooms_tab(page)
    if page.locator("#browse-rooms").get_attribute("aria-expanded") != "true":
        page.click("#browse-rooms")
    page.get_by_role("button", name=f"Join #{room}", exact=True).click()
    expect(page.locator("#room-title")).to_have_text(room)
    expect(page.locator("#rooms button", has_text=room)).to_have_count(1)


def show_rooms_tab(page):
    """On a phone, the rooms are behind the tab bar's Rooms tab: tap it."""
    if page.locator("#toggle-rooms").is_visible():
        page.click("#toggle-rooms")


def scroll_to_top(page):
    """Scroll the message list to its top, as a reader does (a scroll event even when it is there already)."""
    page.eval_on_selector("#messages", "list => { list.scrollTop = 0; list.dispatchEvent(new Event('scroll')); }")


def message_window(page):
    """Return the messages the list renders now: [(seq, text)], top to bottom."""
    script = "items => items.map(i => [Number(i.dataset.seq), i.querySelector('.text').textContent])"
    return [tuple(item) for item in page.locator("#messages li.message").evaluate_all(script)]


def every_message_shown(page, newest_seq):
    """Walk the shown room from its newest message (newest_seq) up to its first, scrolling up.

    Each window the list renders must be seqs in a row, once each, at most MAX_RENDERED; return
    what all the windows showed: [(seq, text)], oldest first.
    """
    page.locator(f'#messages li.message[data-seq="{newest_seq}"]').wait_for(state="attached", timeout=WAIT_MS)
    seen = {}
    while True:
        window = message_window(page)
        seqs = [seq for seq, _ in window]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"a hole or a duplicate in {seqs}"
        assert len(window) <= MAX_RENDERED, f"{len(window)} messages in the DOM"
        for seq, text in window:
            assert seen.setdefault(seq, text) == text, f"seq {seq} changed text"
        if seqs[0] == 1:
            return [(seq, seen[seq]) for seq in sorted(seen)]
        scroll_to_top(page)
        page.wait_for_function(
            "first => Number(document.querySelector('#messages li.message')?.dataset.seq) < first",
            arg=seqs[0],
            timeout=WAIT_MS,
        )


# Run before the page's own scripts: the tab can be made hidden (__setTabHidden), and every
# Notification the page makes is recorded in __notifications (then made for real).
HIDDEN_TAB_AND_NOTIFICATIONS = """
(() => {
  let hidden = false;
  const state = () => (hidden ? "hidden" : "visible");
  Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: state });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  window.__setTabHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  window.__notifications = [];
  if (!window.Notification) return;
  const RealNotification = window.Notification;
  window.Notification = class extends RealNotification {
    constructor(title, options = {}) {
      window.__notifications.push({ title, body: options.body ?? "", tag: options.tag ?? "" });
      super(title, options);
    }
  };
})();
"""


class PageProblems:
    """What a page reports wrong: console errors, script errors, and error answers (4xx, 5xx)."""

    def __init__(self, page):
        self.problems = []
        page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on(
            "response",
            lambda response: response.status >= 400 and self.problems.append(f"{response.status} {response.url}"),
        )


class People:
    """Logged-in pages of real users on the real stack, each its own browser context; closed at the end."""

    def __init__(self, browser, base_url):
        self.browser = browser
        self.base_url = base_url
        self.contexts = []
        self.watches = []

    def new_user(self, prefix="u"):
        """Register a user over HTTP; return (username, token)."""
        username = f"{prefix}{uuid.uuid4().hex[:8]}"
        return username, register(self.base_url, username)

    def context(self, viewport=None, color_scheme="light", notifications=False):
        """Open a browser context (the page's hidden tab and notifications under the test's control)."""
        context = self.browser.new_context(
            base_url=self.base_url,
            viewport=viewport or {"width": 1200, "height": 800},
            color_scheme=color_scheme,
        )
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(HIDDEN_TAB_AND_NOTIFICATIONS)
        if notifications:
            context.grant_permissions(["notifications"], origin=self.base_url)
        self.contexts.append(context)
        return context

    def log_in(self, context, username):
        """Open a page of the context, log in through the form, and wait for the chat to connect."""
        page = context.new_page()
        self.watches.append(PageProblems(page))
        log_in_through_the_form(page, username)
        page.username = username
        return page

    def person(self, username=None, **context_options):
        """Return a logged-in page of a new user (or of username), in a context of its own."""
        if username is None:
            username, _ = self.new_user()
        return self.log_in(self.context(**context_options), username)

    def problems(self):
        """Return what every page reported wrong."""
        return [problem for watch in self.watches for problem in watch.problems]

    def close(self):
        for context in self.contexts:
            context.close()
