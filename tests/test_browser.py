"""The page in a real browser (Debian's Chromium, driven by Playwright) against the real stack.

Screenshots of the main states go to test-artifacts/screenshots/ (printed at the end).
"""

import os
import shutil
import uuid

import pytest

from app import create_app
from extensions import db
from models import Room, User
from services.chat import post_message
from tests.clients import register
from tests.conftest import config_for
from tests.realstack import PROJECT_ROOT

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

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
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions do, on a busy machine


def chromium_path():
    """Return the Chromium to drive, or None."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Launch Chromium once for this module; CI fails rather than skip without it."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no Chromium found (apt-get install chromium); browser tests skipped")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
    print(f"\nscreenshots: {SCREENSHOTS}")


@pytest.fixture
def person(browser, stack):
    """Return a factory of logged-in pages, each its own browser context (its own cookies)."""
    contexts = []

    def make(username=None, viewport=None):
        username = username or f"p{uuid.uuid4().hex[:8]}"
        register(stack.url, username)
        context = browser.new_context(base_url=stack.url, viewport=viewport or {"width": 1200, "height": 800})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", "correct horse")
        page.click("button[type=submit]")
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator("#room-title")).to_have_text("general")
        page.username = username
        return page

    yield make
    for context in contexts:
        context.close()


def send(page, text):
    """Type a message and press Enter."""
    page.fill("#text", text)
    page.press("#text", "Enter")


def message_texts(page):
    """Return the texts of the messages shown, top to bottom."""
    return page.locator("#messages li .text").all_text_contents()


def test_register_log_out_and_log_in_through_the_forms(browser, stack):
    context = browser.new_context(base_url=stack.url)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        name = f"r{uuid.uuid4().hex[:8]}"
        page.goto("/register")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", "correct horse")
        page.fill("input[name=confirm]", "correct horse")
        page.click("button[type=submit]")
        expect(page.locator(".topbar .me")).to_have_text(name)
        page.click("text=Log out")
        expect(page).to_have_url(f"{stack.url}/login")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", "wrong password")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_contain_text("Wrong username or password")
        page.fill("input[name=username]", name)
        page.fill("input[name=password]", "correct horse")
        page.click("button[type=submit]")
        expect(page.locator("#connection")).to_have_text("connected")
    finally:
        context.close()


def test_two_people_chat_see_each_other_online_and_typing(person):
    alice, bob = person(), person()
    expect(alice.locator("#online li", has_text=bob.username)).to_be_visible()

    bob.fill("#text", "hel")
    bob.type("#text", "lo")
    expect(alice.locator("#typing")).to_have_text(f"{bob.username} is typing…")
    send(bob, "hello alice")
    expect(alice.locator("#messages li", has_text="hello alice")).to_have_count(1)
    expect(alice.locator("#typing")).to_have_text("")

    send(alice, "hi bob")
    expect(bob.locator("#messages li", has_text="hi bob")).to_have_count(1)
    expect(alice.locator("#messages li", has_text="hi bob")).to_have_count(1)  # the echo is dropped by id
    alice.screenshot(path=SCREENSHOTS / "chat.png")

    bob.close()
    expect(alice.locator("#online li", has_text=bob.username)).to_have_count(0)


def test_html_in_a_message_shows_as_text_and_runs_nothing(person):
    alice, bob = person(), person()
    dialogs = []
    bob.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    payload = "<img src=x onerror=alert(1)>"
    send(alice, payload)
    expect(bob.locator("#messages li .text", has_text=payload)).to_have_count(1)
    assert bob.locator("#messages img").count() == 0
    bob.wait_for_timeout(500)
    assert dialogs == []


def test_a_private_room_is_invisible_to_a_non_member(person):
    alice, bob = person(), person()
    room = f"s{uuid.uuid4().hex[:6]}"
    alice.fill("#new-room input[name=name]", room)
    alice.check("#new-room input[name=private]")
    alice.click("#new-room button[type=submit]")
    expect(alice.locator("#room-title")).to_have_text(room)
    send(alice, "only for me")
    expect(alice.locator("#messages li", has_text="only for me")).to_have_count(1)

    bob.reload()
    expect(bob.locator("#connection")).to_have_text("connected")
    expect(bob.locator("#rooms button", has_text="general")).to_be_visible()
    expect(bob.locator("#rooms button", has_text=room)).to_have_count(0)


def test_an_export_shows_progress_and_ends_with_a_working_download(person, stack):
    alice = person()
    for n in range(3):
        send(alice, f"line {n}")
    expect(alice.locator("#messages li", has_text="line 2")).to_have_count(1)

    alice.click("#demo-job")
    running = alice.locator(".job[data-status=running]")
    expect(running).to_have_count(1)
    expect(running.locator("progress")).not_to_have_attribute("value", "0")
    alice.screenshot(path=SCREENSHOTS / "job-running.png")
    running.locator("button", has_text="Cancel").click()
    expect(alice.locator(".job[data-status=cancelled]")).to_have_count(1)

    alice.click("#export-csv")
    link = alice.locator(".job[data-status=succeeded] a", has_text="Download")
    expect(link).to_be_visible()
    expect(alice.locator(".job[data-status=succeeded] progress")).to_have_attribute("value", "100")
    alice.screenshot(path=SCREENSHOTS / "job-done.png")
    download = alice.request.get(link.get_attribute("href"))
    assert download.status == 200 and "line 2" in download.text()
    expect(alice.locator("#messages li", has_text="exported")).to_have_count(1)  # the bot's note


def store_messages(stack, room_name, author, texts):
    """Store messages straight in the stack's database, as another web process would."""
    app = create_app(config_for(stack.env["DATABASE_URL"], stack.env["REDIS_URL"]))
    with app.app_context():
        room = db.session.scalar(db.select(Room).filter_by(name=room_name))
        user = db.session.scalar(db.select(User).filter_by(username=author))
        for text in texts:
            post_message(room, user, text)
        db.session.remove()
        db.engine.dispose()


def test_a_web_server_restart_shows_reconnecting_then_every_missed_message_once(person, stack):
    alice, bob = person(), person()
    send(bob, "before the restart")
    expect(alice.locator("#messages li", has_text="before the restart")).to_have_count(1)

    stack.web.stop()
    expect(alice.locator("#connection")).to_have_text("reconnecting…")
    alice.screenshot(path=SCREENSHOTS / "reconnecting.png")
    missed = [f"missed {n}" for n in range(3)]
    store_messages(stack, "general", bob.username, missed)
    stack.start_web()

    expect(alice.locator("#connection")).to_have_text("connected", timeout=30_000)
    for text in missed:
        expect(alice.locator("#messages li", has_text=text)).to_have_count(1)
    texts = message_texts(alice)
    assert [text for text in texts if text.startswith("missed")] == missed  # once each, in order
    ids = [int(i) for i in alice.locator("#messages li").evaluate_all("items => items.map(i => i.dataset.id)")]
    assert ids == sorted(set(ids))


def test_a_phone_sized_window_can_chat_and_reach_rooms_and_jobs(person):
    phone = person(viewport={"width": 390, "height": 844})
    expect(phone.locator("#rooms")).to_be_hidden()
    send(phone, "from my phone")
    expect(phone.locator("#messages li", has_text="from my phone")).to_have_count(1)
    expect(phone.locator("#text")).to_be_focused()
    phone.click("#toggle-rooms")
    expect(phone.locator("#rooms button", has_text="general")).to_be_visible()
    phone.click("#demo-job")
    expect(phone.locator(".job")).to_have_count(1)
    phone.screenshot(path=SCREENSHOTS / "phone.png")
    # Cancel it: left running, its bot message would land in `general` during later tests.
    phone.locator(".job button", has_text="Cancel").click()
    expect(phone.locator(".job[data-status=cancelled]")).to_have_count(1)
    phone.locator("#rooms button", has_text="general").click()
    expect(phone.locator("#rooms")).to_be_hidden()
