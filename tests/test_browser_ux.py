"""The page people use, in Chromium against the real stack, with two or more real users.

Rooms and unread counts, notifications, edits and deletions, the room browser, keyboard-only use,
a 10,000-message room, jobs, accessibility (axe-core) and the README's screenshots.
"""

import os
import shutil
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
from sqlalchemy import insert, update

from app import create_app
from extensions import db
from models import Message, Room, User, utcnow
from services.chat import change_message, post_message
from tests.browsers import (
    MAX_RENDERED,
    WAIT_MS,
    People,
    every_message_shown,
    expect_api,
    join_room,
    message_window,
    open_room,
    scroll_to_top,
)
from tests.clients import SocketClient
from tests.helpers import bearer, config_for, wait_until
from tests.realstack import PROJECT_ROOT

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")
expect = expect_api()

AXE_SOURCE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
README_SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def people(browser, stack):
    """Return a People of the session's stack; their browser contexts close after the test."""
    crowd = People(browser, stack.url)
    yield crowd
    crowd.close()


# Helpers: the HTTP API, and the stack's database written directly (as another process would).


def create_room(stack, token, private=False, members=(), name=None):
    """Create a room over HTTP as the token's user (a member of it); return its name."""
    name = name or f"r{uuid.uuid4().hex[:8]}"
    body = {"name": name, "private": private, "members": list(members)}
    response = requests.post(f"{stack.url}/api/rooms", json=body, headers=bearer(token), timeout=10)
    assert response.status_code == 201, response.text
    return name


def rooms_of(stack, token):
    """Return GET /api/rooms as the token's user, by room name."""
    response = requests.get(f"{stack.url}/api/rooms", headers=bearer(token), timeout=10)
    assert response.status_code == 200, response.text
    return {room["name"]: room for room in response.json()}


@contextmanager
def stack_database(stack):
    """Yield inside an app context on the stack's database (no Socket.IO broadcast from here)."""
    config = config_for(stack.env["DATABASE_URL"], stack.env["REDIS_URL"], stack.env["ROOMCAST_INSTANCE_PATH"])
    app = create_app(config)
    with app.app_context():
        try:
            yield
        finally:
            db.session.remove()
            db.engine.dispose()


def find(model, **fields):
    return db.session.scalar(db.select(model).filter_by(**fields))


def store_messages(stack, room, author, texts):
    """Store messages as another web process would, with no broadcast; return their seqs."""
    with stack_database(stack):
        found, user = find(Room, name=room), find(User, username=author)
        return [post_message(found, user, text).seq for text in texts]


def change_quietly(stack, room, author, seq, text):
    """Edit (text) or delete (None) a message with no broadcast, as when the event is lost."""
    with stack_database(stack):
        found, user = find(Room, name=room), find(User, username=author)
        message = find(Message, room_id=found.id, seq=seq)
        change_message(found, user, message.id, text, 0)


def seed_messages(stack, room, authors, count, start=None, spacing=timedelta(seconds=20)):
    """Insert count messages in one statement (the authors taking turns), spacing apart from start."""
    start = start or utcnow() - spacing * count
    with stack_database(stack):
        found = find(Room, name=room)
        ids = [find(User, username=name).id for name in authors]
        first = found.last_seq + 1
        rows = [
            {
                "room_id": found.id,
                "seq": first + n,
                "author_id": ids[n % len(ids)],
                "text": f"seeded {first + n}",
                "created_at": start + spacing * n,
            }
            for n in range(count)
        ]
        db.session.execute(insert(Message), rows)
        db.session.execute(update(Room).where(Room.id == found.id).values(last_seq=first + count - 1))
        db.session.commit()


# Helpers: the page.


def send(page, text):
    """Type a message and press Enter; wait until the page shows it."""
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#messages li.message", has_text=text).last).to_be_visible()


def item(page, text):
    """The message item holding text."""
    return page.locator("#messages li.message", has_text=text)


def badge(page, room):
    """The unread badge of a room in "my rooms"."""
    return page.locator("#rooms button", has_text=room).locator(".unread")


def open_tab(context):
    """Open the chat page in another tab of a logged-in context."""
    page = context.new_page()
    page.goto("/")
    expect(page.locator("#connection")).to_have_text("connected")
    expect(page.locator("#room-title")).to_have_text("general")
    return page


def reload(page):
    page.reload()
    expect(page.locator("#connection")).to_have_text("connected")
    expect(page.locator("#room-title")).to_have_text("general")


def notifications(page):
    return page.evaluate("window.__notifications")


def wait_for_notifications(page, count):
    page.wait_for_function("count => window.__notifications.length >= count", arg=count, timeout=WAIT_MS)
    return notifications(page)


def focused(page):
    """Describe the focused element: its id, or its data-action, or its label."""
    return page.evaluate(
        """() => {
          const element = document.activeElement;
          const label = element.getAttribute("aria-label") || element.textContent.trim();
          return element.id || element.dataset.action || label;
        }"""
    )


def tab_to(page, wanted, limit=80):
    """Press Tab until the focused element is described as wanted (see focused); fail after limit presses."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page) == wanted:
            return
    raise AssertionError(f"Tab never reached {wanted!r}")


def axe_violations(page):
    """Run axe-core in the page; return its serious and critical violations as (rule, impact, targets)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE.read_text())  # through the DevTools protocol: the page's CSP allows no inline script
    found = page.evaluate(
        """async () => {
          const { violations } = await axe.run(document, { resultTypes: ["violations"] });
          return violations.map((v) => [v.id, v.impact, v.nodes.map((n) => n.target.join(" ")).slice(0, 5)]);
        }"""
    )
    return [violation for violation in found if violation[1] in ("serious", "critical")]


# Rooms and unread counts.


def test_unread_counts_move_live_survive_a_reload_and_follow_the_other_tab(people, stack):
    alice_name, alice_token = people.new_user("a")
    room = create_room(stack, alice_token)
    context = people.context()
    alice = people.log_in(context, alice_name)
    bob = people.person()
    join_room(bob, room)

    for n in range(3):
        send(bob, f"unread {n}")
    expect(badge(alice, room)).to_have_text("3")  # alice reads general: counted live
    expect(alice).to_have_title("(3) Roomcast")
    assert rooms_of(stack, alice_token)[room]["unread"] == 3

    reload(alice)
    expect(badge(alice, room)).to_have_text("3")  # from the server's read marker
    expect(alice).to_have_title("(3) Roomcast")
    other_tab = open_tab(context)
    expect(badge(other_tab, room)).to_have_text("3")

    open_room(alice, room)
    expect(item(alice, "unread 0").locator(".new-line")).to_have_text("New messages")  # where alice left off
    expect(badge(alice, room)).to_have_count(0)
    expect(alice).to_have_title("Roomcast")
    expect(badge(other_tab, room)).to_have_count(0)  # the read event reached alice's other tab
    expect(other_tab).to_have_title("Roomcast")

    send(bob, "one more")
    expect(item(alice, "one more")).to_have_count(1)
    expect(badge(alice, room)).to_have_count(0)  # seen as it came
    wait_until(lambda: rooms_of(stack, alice_token)[room]["unread"] == 0, "alice's read marker past 'one more'")
    expect(badge(other_tab, room)).to_have_count(0)
    reload(other_tab)
    expect(other_tab.locator("#rooms button", has_text=room)).to_be_visible()
    expect(badge(other_tab, room)).to_have_count(0)


def test_a_mention_or_a_private_message_notifies_while_the_tab_is_hidden(people, stack):
    alice = people.person(notifications=True)
    bob_name, bob_token = people.new_user("b")
    bob = people.log_in(people.context(), bob_name)
    room = create_room(stack, bob_token)
    join_room(alice, room)
    expect(bob.locator("#rooms button", has_text=room)).to_be_visible()  # bob's room, created elsewhere: joined live
    open_room(bob, room)
    private = create_room(stack, bob_token, private=True, members=[alice.username])
    expect(alice.locator("#rooms button", has_text=private).locator(".private-icon")).to_have_count(1)  # came live

    send(bob, f"@{alice.username} are you there?")
    mention = item(alice, "are you there?")
    expect(mention.locator("mark.mention")).to_have_text(f"@{alice.username}")
    expect(mention).to_have_class("message mentions-me")
    assert bob.locator("#messages mark.mention").count() == 0  # highlighted for the named user only

    alice.evaluate("__setTabHidden(true)")
    send(bob, "nothing for alice")
    send(bob, f"ping @{alice.username}.")
    open_room(bob, private)
    send(bob, "a secret")
    shown = wait_for_notifications(alice, 2)
    assert [(n["title"], n["body"]) for n in shown] == [
        (f"{bob_name} in #{room}", f"ping @{alice.username}."),
        (f"{bob_name} in 🔒 {private}", "a secret"),
    ]
    expect(alice).to_have_title("(3) Roomcast")  # hidden: nothing is read, even in the shown room

    alice.evaluate("__setTabHidden(false)")
    expect(alice).to_have_title("(1) Roomcast")  # back: the shown room is read; the private one waits
    expect(item(alice, "nothing for alice").locator(".new-line")).to_have_text("New messages")  # where alice left
    assert len(notifications(alice)) == 2
    assert alice.evaluate("Notification.permission") == "granted"


def test_permission_to_notify_is_asked_once_on_a_user_gesture(people):
    alice = people.person()
    asked = "localStorage.getItem('roomcast.notifications-asked')"
    assert alice.evaluate(asked) is None
    send(alice, "my first message asks")
    alice.wait_for_function(f"{asked} === '1'", timeout=WAIT_MS)


def test_rooms_appear_live_and_are_joined_and_left_through_the_room_browser(people, stack):
    context = people.context()
    alice_name, _ = people.new_user("a")
    alice = people.log_in(context, alice_name)
    bob, carol = people.person(), people.person()
    expect(alice.locator("#leave-room")).to_be_hidden()  # general is everyone's

    public, private = f"p{uuid.uuid4().hex[:8]}", f"s{uuid.uuid4().hex[:8]}"
    bob.fill("#new-room-name", public)
    bob.click("#new-room button[type=submit]")
    expect(bob.locator("#room-title")).to_have_text(public)
    send(bob, "welcome to the public room")
    bob.fill("#new-room-name", private)
    bob.check("#new-room input[name=private]")
    bob.fill("#new-room-members", alice_name)
    bob.click("#new-room button[type=submit]")
    expect(bob.locator("#room-title")).to_have_text(private)

    # Live, without a reload: the private room is alice's (not carol's); the public one is there to join.
    expect(alice.locator("#rooms button", has_text=private)).to_be_visible()
    expect(alice.locator("#rooms button", has_text=public)).to_have_count(0)
    alice.click("#browse-rooms")
    expect(alice.locator("#public-rooms li", has_text=public)).to_contain_text("1 member")
    expect(alice.get_by_role("button", name=f"Join #{public}")).to_be_visible()
    expect(alice.locator("#public-rooms li", has_text="general")).to_contain_text("always joined")
    carol.click("#browse-rooms")
    expect(carol.locator("#public-rooms li", has_text=public)).to_have_count(1)
    expect(carol.locator("#rooms button", has_text=private)).to_have_count(0)
    expect(carol.locator("#public-rooms li", has_text=private)).to_have_count(0)

    open_room(alice, private)  # a private room shows its members
    expect(alice.locator("#members-section")).to_be_visible()
    expect(alice.locator("#members li")).to_have_text(sorted([alice_name, bob.username]))
    open_room(alice, "general")
    expect(alice.locator("#members-section")).to_be_hidden()

    alice.get_by_role("button", name=f"Join #{public}").click()
    expect(alice.locator("#room-title")).to_have_text(public)
    expect(item(alice, "welcome to the public room")).to_have_count(1)
    expect(alice.get_by_role("button", name=f"Leave #{public}")).to_be_visible()
    other_tab = open_tab(context)
    expect(other_tab.locator("#rooms button", has_text=public)).to_be_visible()

    alice.click("#leave-room")
    expect(alice.locator("#room-title")).to_have_text("general")
    expect(alice.locator("#rooms button", has_text=public)).to_have_count(0)
    expect(other_tab.locator("#rooms button", has_text=public)).to_have_count(0)  # told by `parted`
    open_room(bob, public)
    expect(bob.locator("#online li", has_text=alice_name)).to_have_count(0)
    reload(alice)
    expect(alice.locator("#rooms button", has_text=public)).to_have_count(0)
    alice.click("#browse-rooms")
    expect(alice.get_by_role("button", name=f"Join #{public}")).to_have_count(1)
    alice.get_by_role("button", name=f"Join #{public}").click()  # joined again: told to the other tab by `member`
    expect(other_tab.locator("#rooms button", has_text=public)).to_be_visible()
    assert people.problems() == []


def test_a_message_sent_before_the_first_room_is_shown_goes_once_it_is(people, stack):
    context = people.context()
    name, _ = people.new_user("early")
    page = context.new_page()
    held = []
    page.route("**/api/rooms", lambda route: held.append(route))  # the room list waits: no room is shown yet
    page.goto("/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "correct horse")
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("connected")
    page.wait_for_function("() => document.querySelector('#room-title').textContent === ''", timeout=WAIT_MS)
    page.fill("#text", "typed before general was on screen")
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("typed before general was on screen")  # kept, not lost
    held[0].continue_()
    expect(page.locator("#room-title")).to_have_text("general")
    expect(item(page, "typed before general was on screen")).to_have_count(1)
    expect(page.locator("#text")).to_have_value("")


# Messages: edits and deletions, grouping, days, links, the "new messages" line, jump to latest.


def test_edits_and_deletions_are_seen_live_after_a_lost_event_and_after_a_reconnect(people, stack):
    alice_name, alice_token = people.new_user("a")
    room = create_room(stack, alice_token)
    alice = people.log_in(people.context(), alice_name)
    bob = people.person()
    open_room(alice, room)
    join_room(bob, room)
    for text in ("helo wrld", "to be deleted", "third", "fourth"):
        send(alice, text)
    expect(item(bob, "fourth")).to_have_count(1)

    item(alice, "helo wrld").hover()
    item(alice, "helo wrld").get_by_role("button", name="Edit").click()
    expect(alice.locator("#editing")).to_be_visible()
    alice.fill("#text", "hello world")
    alice.press("#text", "Enter")
    for page in (alice, bob):
        expect(item(page, "hello world").locator(".edited")).to_have_text("(edited)")
    expect(item(bob, "helo wrld")).to_have_count(0)
    assert bob.locator("#messages li.message.mine").count() == 0  # not bob's to change
    assert item(bob, "hello world").get_by_role("button", name="Edit").count() == 0

    item(alice, "to be deleted").hover()
    item(alice, "to be deleted").get_by_role("button", name="Delete").click()
    item(alice, "to be deleted").get_by_role("button", name="Delete").click()  # "Delete this message?"
    for page in (alice, bob):
        expect(page.locator("#messages li.message.deleted em")).to_have_text("message deleted")
        expect(item(page, "to be deleted")).to_have_count(0)

    # An edit whose event was lost (no broadcast); the next edit's edit_seq shows the hole.
    change_quietly(stack, room, alice_name, 3, "third, changed quietly")
    alice.locator("#text").focus()
    alice.keyboard.press("ArrowUp")  # edits alice's last message: "fourth"
    expect(alice.locator("#text")).to_have_value("fourth")
    alice.fill("#text", "fourth, edited")
    alice.keyboard.press("Enter")
    for page in (alice, bob):
        expect(item(page, "fourth, edited")).to_have_count(1)
        expect(item(page, "third, changed quietly")).to_have_count(1)  # fetched with history edits_since

    # Away while messages change and arrive: the join after the reconnect brings both.
    stack.web.stop()
    for page in (alice, bob):
        expect(page.locator("#connection")).to_have_text("reconnecting…")
    change_quietly(stack, room, alice_name, 1, "hello world, edited while you were away")
    change_quietly(stack, room, alice_name, 4, None)
    store_messages(stack, room, alice_name, ["missed one", "missed two"])
    stack.start_web()
    for page in (alice, bob):
        expect(page.locator("#connection")).to_have_text("connected", timeout=30_000)
        expect(item(page, "edited while you were away")).to_have_count(1)
        expect(page.locator("#messages li.message.deleted")).to_have_count(2)
        expect(item(page, "missed two")).to_have_count(1)
    # The "new messages" line goes where the catch-up began; a screen reader hears a summary, not each.
    expect(item(bob, "missed one").locator(".new-line")).to_have_text("New messages")
    expect(bob.locator("#announcer")).to_have_text(f"2 new messages in #{room}")
    expect(item(alice, "missed one").locator(".new-line")).to_have_count(0)  # alice wrote them

    send(alice, "live again")
    expect(bob.locator("#announcer")).to_have_text(f"{alice_name}: live again")  # one live message is read out
    assert [text for _, text in message_window(bob)] == [
        "hello world, edited while you were away",
        "message deleted",
        "third, changed quietly",
        "message deleted",
        "missed one",
        "missed two",
        "live again",
    ]


def test_messages_group_by_author_and_day_link_safely_and_jump_to_latest(people, stack):
    alice_name, alice_token = people.new_user("a")
    bob_name, _ = people.new_user("b")
    room = create_room(stack, alice_token)
    yesterday = utcnow() - timedelta(days=1)
    seed_messages(stack, room, [bob_name, bob_name, alice_name], 3, start=yesterday)
    seed_messages(stack, room, [bob_name], 150, start=utcnow() - timedelta(minutes=30), spacing=timedelta(seconds=1))
    alice = people.log_in(people.context(), alice_name)
    bob = people.log_in(people.context(), bob_name)
    open_room(alice, room)
    join_room(bob, room)

    expect(alice.locator("#messages .day-separator").last).to_have_text("Today")
    expect(alice.locator("#messages li.message").last).to_have_class("message continued")  # bob, bob, bob...
    send(bob, "docs at https://example.com/a?b=1, and javascript:alert(1) <b>bold</b>")
    send(alice, "thanks")
    link = item(alice, "docs at").locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/a?b=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_text("https://example.com/a?b=1")
    assert item(alice, "docs at").locator(".text b").count() == 0
    expect(item(alice, "docs at").locator(".text")).to_contain_text("<b>bold</b>")
    expect(item(alice, "thanks")).not_to_have_class("message mine continued")

    # Scrolled up: new messages do not move the view, and "jump to latest" brings it back.
    scroll_to_top(alice)
    expect(alice.locator("#jump-latest")).to_be_visible()
    send(bob, "while alice reads older ones")
    expect(item(alice, "while alice reads older ones")).to_have_count(1)
    assert alice.eval_on_selector("#messages", "list => list.scrollTop") < 400
    alice.click("#jump-latest")
    expect(alice.locator("#jump-latest")).to_be_hidden()
    expect(item(alice, "while alice reads older ones")).to_be_in_viewport()

    # Yesterday's messages come back on scrolling up (the first join brought the latest 50).
    shown = every_message_shown(alice, 156)
    assert [text for _, text in shown[:3]] == ["seeded 1", "seeded 2", "seeded 3"]
    expect(alice.locator("#messages .day-separator").first).to_have_text("Yesterday")
    expect(alice.locator('#messages li[data-seq="2"]')).to_have_class("message continued")  # bob again
    expect(alice.locator('#messages li[data-seq="3"]')).to_have_class("message mine")


def test_a_room_of_10000_messages_renders_a_bounded_window_and_pages_older_on_scroll(people, stack):
    alice_name, alice_token = people.new_user("a")
    bob_name, bob_token = people.new_user("b")
    room = create_room(stack, alice_token)
    seed_messages(stack, room, [alice_name, bob_name], 10_000, spacing=timedelta(seconds=1))
    alice = people.log_in(people.context(), alice_name)
    open_room(alice, room)
    expect(item(alice, "seeded 10000")).to_be_visible()
    items = alice.locator("#messages li.message")
    assert items.count() <= MAX_RENDERED

    firsts = []
    for _ in range(6):  # six pages up: older pages come from history before, the window stays bounded
        first = message_window(alice)[0][0]
        scroll_to_top(alice)
        alice.wait_for_function(
            "first => Number(document.querySelector('#messages li.message').dataset.seq) < first", arg=first
        )
        firsts.append(message_window(alice)[0][0])
        assert items.count() <= MAX_RENDERED
    assert firsts == sorted(firsts, reverse=True) and firsts[-1] <= 10_000 - 500
    window = message_window(alice)
    assert [seq for seq, _ in window] == list(range(window[0][0], window[0][0] + len(window)))
    assert all(text == f"seeded {seq}" for seq, text in window)

    alice.click("#jump-latest")
    expect(item(alice, "seeded 10000")).to_be_in_viewport()
    assert items.count() <= MAX_RENDERED

    # Live messages piling up at the bottom: the oldest items leave the DOM.
    sender = SocketClient(stack.url, bob_token, "websocket").connect()
    try:
        for n in range(MAX_RENDERED + 50):
            assert sender.call("send", {"room": room, "text": f"pile {n}"})["ok"]
    finally:
        sender.close()
    expect(item(alice, f"pile {MAX_RENDERED + 49}")).to_be_in_viewport()
    assert items.count() <= MAX_RENDERED
    window = message_window(alice)
    assert [seq for seq, _ in window] == list(range(window[0][0], 10_000 + MAX_RENDERED + 51))


# Jobs.


def test_the_jobs_panel_lets_one_choose_the_demo_length_and_survives_a_reload(people, stack):
    alice_name, alice_token = people.new_user("a")
    room = create_room(stack, alice_token)  # the bot's notes land here, not in general
    alice = people.log_in(people.context(), alice_name)
    open_room(alice, room)
    send(alice, "a line to export")
    alice.select_option("#demo-seconds", label="5 seconds")
    alice.click("#demo-job")
    demo = alice.locator(".job", has_text="Demo job: 5 s")
    expect(demo).to_have_count(1)
    alice.click("#export-csv")
    expect(alice.locator(".job[data-status=succeeded] a", has_text="Download")).to_be_visible()

    reload(alice)
    expect(alice.locator(".job", has_text="Demo job: 5 s")).to_have_count(1)
    expect(alice.locator(".job[data-status=succeeded] a", has_text="Download")).to_be_visible()
    demo = alice.locator(".job", has_text="Demo job: 5 s")
    expect(demo).to_have_attribute("data-status", "succeeded", timeout=60_000)  # 5 s, on a busy worker


# Keyboard only.


def test_everything_can_be_done_from_the_keyboard_with_a_visible_focus(people, stack):
    owner_name, owner_token = people.new_user("o")
    room = create_room(stack, owner_token)
    alice = people.person()
    expect(alice.locator("#text")).to_be_focused()  # the page opens on the composer
    alice.keyboard.type("typo messge")
    alice.keyboard.press("Enter")
    expect(item(alice, "typo messge")).to_have_count(1)

    alice.keyboard.press("ArrowUp")  # an empty composer edits one's last message
    expect(alice.locator("#editing")).to_be_visible()
    alice.keyboard.press("Control+A")
    alice.keyboard.type("typo fixed")
    alice.keyboard.press("Enter")
    expect(item(alice, "typo fixed").locator(".edited")).to_have_text("(edited)")
    alice.keyboard.press("ArrowUp")
    alice.keyboard.press("Escape")  # cancels
    expect(alice.locator("#editing")).to_be_hidden()
    expect(alice.locator("#text")).to_have_value("")

    # The room browser, from the keyboard; focus is visible on the way.
    alice.locator("body").focus()
    tab_to(alice, "browse-rooms")
    outline = alice.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", f"no visible focus: outline {outline}"
    alice.keyboard.press("Enter")
    tab_to(alice, f"Join #{room}")
    alice.keyboard.press("Enter")
    expect(alice.locator("#room-title")).to_have_text(room)
    expect(alice.locator("#text")).to_be_focused()
    alice.keyboard.type("in the new room")
    alice.keyboard.press("Enter")

    # Delete one's own message: Tab to its Delete, Enter, then Enter on "Delete" to confirm.
    tab_to(alice, "delete")
    expect(item(alice, "in the new room").locator('[data-action="delete"]')).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.locator('[data-action="confirm-delete"]')).to_be_focused()
    alice.keyboard.press("Enter")
    expect(alice.locator("#messages li.message.deleted")).to_have_count(1)

    # Back to general through the room list, then every part of the page is reached by Tab.
    tab_to(alice, "#general")
    alice.keyboard.press("Enter")
    expect(alice.locator("#room-title")).to_have_text("general")
    reached = set()
    alice.locator("body").focus()
    for _ in range(60):
        alice.keyboard.press("Tab")
        reached.add(focused(alice))
    for control in ("browse-rooms", "new-room-name", "messages", "text", "send", "demo-seconds", "demo-job"):
        assert control in reached, f"Tab never reaches {control}: {sorted(reached)}"


# Look and access: axe-core in light, dark and phone; the README's screenshots.


def scene_user(stack, wanted):
    """Register a readable name for the screenshots (wanted + a suffix once a run took it); return it."""
    for name in (wanted, f"{wanted}{uuid.uuid4().hex[:4]}"):
        body = {"username": name, "password": "correct horse"}
        response = requests.post(f"{stack.url}/api/users", json=body, timeout=10)
        if response.status_code == 201:
            return name
        assert response.status_code == 409, response.text
    raise AssertionError(f"no free name for {wanted}")


def token_of(stack, name):
    body = {"username": name, "password": "correct horse"}
    response = requests.post(f"{stack.url}/api/tokens", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def play_scene(people, stack):
    """Two people in a room with yesterday's history, a link, mentions, an edit, a deletion, unread
    messages elsewhere and two jobs; return (maya's name, the room, maya's page)."""
    maya, theo = scene_user(stack, "maya"), scene_user(stack, "theo")
    suffix = uuid.uuid4().hex[:4]
    room = create_room(stack, token_of(stack, maya), name=f"design-{suffix}")
    create_room(stack, token_of(stack, maya), private=True, members=[theo], name=f"launch-{suffix}")
    random_room = create_room(stack, token_of(stack, theo), name=f"random-{suffix}")
    yesterday = utcnow() - timedelta(days=1, hours=2)
    lines = [(theo, "Kick-off notes are in the shared folder."), (maya, "Thanks! I will read them tonight.")]
    with stack_database(stack):
        found = find(Room, name=room)
        for n, (author, text) in enumerate(lines):
            message = post_message(found, find(User, username=author), text)
            message.created_at = yesterday + timedelta(minutes=n * 3)
        db.session.commit()

    theo_page = people.log_in(people.context(), theo)
    join_room(theo_page, room)
    page = people.log_in(people.context(), maya)
    join_room(page, random_room)
    open_room(page, room)
    send(theo_page, "Morning! The new build is up: https://example.com/builds/42")
    send(theo_page, "The dark theme needs a second look.")
    send(page, f"@{theo} I will check the contrast on the phone layout")
    send(page, "Looks good to me")
    send(page, "Oops, wrong room")
    item(page, "Oops, wrong room").hover()
    item(page, "Oops, wrong room").get_by_role("button", name="Delete").click()
    item(page, "Oops, wrong room").get_by_role("button", name="Delete").click()
    expect(page.locator("#messages li.message.deleted")).to_have_count(1)
    page.locator("#text").focus()
    page.keyboard.press("ArrowUp")
    page.fill("#text", "Looks great to me")
    page.keyboard.press("Enter")
    expect(item(page, "Looks great to me").locator(".edited")).to_be_visible()
    send(theo_page, f"Thanks @{maya}! Shipping after lunch.")
    open_room(theo_page, random_room)
    send(theo_page, "Lunch at noon?")
    send(theo_page, "Pizza or tacos?")
    expect(badge(page, random_room)).to_have_text("2")
    page.click("#export-csv")
    expect(page.locator(".job[data-status=succeeded] a", has_text="Download")).to_be_visible()
    page.select_option("#demo-seconds", label="1 minute")
    page.click("#demo-job")
    expect(page.locator(".job[data-status=running] progress")).not_to_have_attribute("value", "0")
    return maya, room, page


def view_scene(people, maya, room, viewport=None, color_scheme="light"):
    """Open maya's page on the scene's room, in a context of its own look."""
    page = people.log_in(people.context(viewport=viewport, color_scheme=color_scheme), maya)
    open_room(page, room)
    expect(page.locator(".job[data-status=running]")).to_have_count(1)
    page.fill("#text", "Draft: the release notes")
    page.evaluate("document.activeElement.blur()")
    page.mouse.move(0, 0)  # no hover highlight where the last tap was
    return page


def cancel_jobs(page):
    for button in page.locator(".job button", has_text="Cancel").all():
        button.click()
    expect(page.locator(".job[data-status=running]")).to_have_count(0)


@pytest.mark.parametrize(("look", "viewport", "color_scheme"), [("light", None, "light"), ("dark", None, "dark")])
def test_axe_finds_no_serious_accessibility_violation(people, stack, look, viewport, color_scheme):
    maya, room, page = play_scene(people, stack)
    try:
        viewer = view_scene(people, maya, room, viewport=viewport, color_scheme=color_scheme)
        assert axe_violations(viewer) == [], look
        viewer.click("#browse-rooms")
        viewer.locator("#messages li.message.mine:not(.deleted)").last.locator('[data-action="delete"]').click()
        assert axe_violations(viewer) == [], f"{look}, with the room browser open and a delete to confirm"
        viewer.evaluate("document.body.append(document.createElement('button'))")  # the check itself works
        assert "button-name" in [rule for rule, _, _ in axe_violations(viewer)]
    finally:
        cancel_jobs(page)


def test_axe_finds_no_serious_violation_on_a_phone_and_each_tab_is_one_tap_away(people, stack):
    maya, room, page = play_scene(people, stack)
    try:
        phone = view_scene(people, maya, room, viewport=PHONE)
        panels = {"rooms": "#sidebar", "chat": "main.room", "people": "aside.people"}
        for view, panel in panels.items():
            phone.click(f'.tabbar button[data-view="{view}"]')
            expect(phone.locator(panel)).to_be_visible()
            for other in set(panels.values()) - {panel}:
                expect(phone.locator(other)).to_be_hidden()
            expect(phone.locator(".tabbar [aria-current=page]")).to_have_attribute("data-view", view)
            assert axe_violations(phone) == [], view
    finally:
        cancel_jobs(page)


def test_screenshots_light_dark_and_phone(people, stack, tmp_path):
    """Screenshots to the test's folder; with UPDATE_SCREENSHOTS=1 (make screenshots), to docs/screenshots too."""
    maya, room, page = play_scene(people, stack)
    shots = {}
    try:
        looks = (("light", None, "light"), ("dark", None, "dark"), ("phone", PHONE, "dark"))
        for look, viewport, color_scheme in looks:
            viewer = view_scene(people, maya, room, viewport=viewport, color_scheme=color_scheme)
            shots[look] = tmp_path / f"{look}.png"
            viewer.screenshot(path=shots[look])
    finally:
        cancel_jobs(page)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for look, path in shots.items():
            shutil.copyfile(path, README_SCREENSHOTS / f"{look}.png")
    assert all(path.stat().st_size > 10_000 for path in shots.values())
