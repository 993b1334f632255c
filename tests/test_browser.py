"""The page in a real browser (Debian's Chromium, driven by Playwright) against the real stack.

Screenshots of the main states go to test-artifacts/screenshots/ (printed at the end).
"""

import json
import re
import threading
import time
import uuid

import pytest
import requests
import socketio

from app import create_app
from extensions import db
from models import Room, User
from services.chat import post_message
from tests.browsers import SCREENSHOTS, WAIT_MS, every_message_shown, log_in_through_the_form, open_room
from tests.clients import SocketClient, register
from tests.helpers import bearer, config_for

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions do, on a busy machine


def socket_event(frame):
    """Return (namespace, event, data) of a Socket.IO event frame (Engine.IO text), else None."""
    match = isinstance(frame, str) and re.fullmatch(r"42(/[^,]*),\d*(\[.*\])", frame, flags=re.DOTALL)
    if not match:
        return None
    name, *args = json.loads(match[2])
    return match[1], name, args[0] if args else None


class Wire:
    """A page's WebSocket, routed through Playwright: the events the page sent, and server events to lose.

    The page's sockets share one Engine.IO connection; it starts on polling and moves to the
    WebSocket (the upgrade, "5"), after which every event passes here. Playwright hands frames
    over only while the test is inside a Playwright call (an expect, a wait_for_timeout).
    """

    def __init__(self):
        self.sent = []  # (namespace, event, data) the page emitted
        self.losses = []  # predicates of (namespace, event, data): each loses the first server event it matches
        self.lost = []
        self.refusals = []  # (namespace, event, error code, data items): the next such page event is refused
        self.carrying = False  # the WebSocket carries the events now

    def route(self, websocket):
        server = websocket.connect_to_server()
        websocket.on_message(lambda frame: self.from_page(frame, server, websocket))
        server.on_message(lambda frame: self.from_server(frame, websocket))

    def from_page(self, frame, server, page):
        if frame == "5":
            self.carrying = True
        if event := socket_event(frame):
            self.sent.append(event)
            for refusal in self.refusals:
                namespace, name, code, match = refusal
                if (namespace, name) == event[:2] and match.items() <= event[2].items():
                    self.refusals.remove(refusal)
                    ack_id = re.match(r"42[^,]*,(\d+)", frame)[1]
                    error = {"ok": False, "error": {"code": code, "message": "refused by the test"}}
                    page.send(f"43{namespace},{ack_id}{json.dumps([error])}")
                    return
        server.send(frame)

    def from_server(self, frame, page):
        if isinstance(frame, str) and frame.startswith("0"):  # opened on the WebSocket (no polling first)
            self.carrying = True
        event = socket_event(frame)
        for loses in self.losses:
            if event and loses(*event):
                self.losses.remove(loses)
                self.lost.append(event)
                return
        page.send(frame)

    def refuse(self, namespace, name, code, **match):
        """Answer the page's next event of that name whose data has those items with an error ack of code."""
        self.refusals.append((namespace, name, code, match))

    def lose(self, namespace, name, **match):
        """Lose the next server event of that name whose data has those items."""
        self.losses.append(
            lambda ns, event, data: (ns, event) == (namespace, name) and match.items() <= (data or {}).items()
        )


class ConsoleWatch:
    """What a page reports wrong: console errors (a resource's 404 among them), script errors, error answers."""

    def __init__(self, page):
        self.problems = []
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("response", self.response)

    def console(self, message):
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location.get('url')})")

    def response(self, response):
        if response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def check(self, page, where):
        """Assert the page reported nothing wrong so far, once what it loads after its load event had time."""
        page.wait_for_timeout(500)  # the icon is fetched after the load event
        assert self.problems == [], f"{where}: {self.problems}"


def wait_until(page, condition, timeout=WAIT_MS / 1000):
    """Wait (letting Playwright deliver the page's frames) until condition() is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


@pytest.fixture
def person(browser, stack):
    """Return a factory of logged-in pages, each its own browser context (its own cookies).

    With wire=True the page's WebSocket goes through a Wire (page.wire), ready to lose events.
    """
    contexts = []

    def make(username=None, viewport=None, wire=False):
        username = username or f"p{uuid.uuid4().hex[:8]}"
        register(stack.url, username)
        context = browser.new_context(base_url=stack.url, viewport=viewport or {"width": 1200, "height": 800})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        if wire:
            tap = Wire()
            context.route_web_socket(lambda url: "/socket.io/" in url, tap.route)
        page = context.new_page()
        page.wire = tap if wire else None
        watch = ConsoleWatch(page)
        log_in_through_the_form(page, username)
        watch.check(page, "the chat page")
        page.username = username
        if wire:
            wait_until(page, lambda: tap.carrying)
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


def test_the_login_register_and_chat_pages_load_with_no_console_error(browser, stack):
    context = browser.new_context(base_url=stack.url)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        watch = ConsoleWatch(page)
        for path in ("/login", "/register"):
            page.goto(path)
            watch.check(page, path)
        page.fill("input[name=username]", f"c{uuid.uuid4().hex[:8]}")
        page.fill("input[name=password]", "correct horse")
        page.fill("input[name=confirm]", "correct horse")
        page.click("button[type=submit]")
        expect(page.locator("#connection")).to_have_text("connected")
        watch.check(page, "the chat page")
        # Every resource a page names is served, the icon among them, whether or not this browser fetched it.
        for path in ("/login", "/register", "/"):
            page.goto(path)
            names = page.eval_on_selector_all(
                "link[href], script[src], img[src]", "els => els.map(e => e.href || e.src)"
            )
            assert any("favicon" in name for name in names), f"{path} names no icon"
            for name in names:
                assert page.request.get(name).status == 200, f"{path} names {name}, which is not served"
        watch.check(page, "the pages again")
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


def stack_config(stack):
    """Return a TestingConfig on the stack's database, Redis and instance folder."""
    return config_for(stack.env["DATABASE_URL"], stack.env["REDIS_URL"], stack.env["ROOMCAST_INSTANCE_PATH"])


def store_messages(stack, room_name, author, texts):
    """Store messages straight in the stack's database, as another web process would."""
    app = create_app(stack_config(stack))
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
    phone.click("#tab-people")  # the tab bar: Rooms, Chat, People & jobs
    phone.click("#demo-job")
    expect(phone.locator(".job")).to_have_count(1)
    phone.screenshot(path=SCREENSHOTS / "phone.png")
    # Cancel it: left running, its bot message would land in `general` during later tests.
    phone.locator(".job button", has_text="Cancel").click()
    expect(phone.locator(".job[data-status=cancelled]")).to_have_count(1)
    phone.click("#toggle-rooms")
    phone.locator("#rooms button", has_text="general").click()
    expect(phone.locator("#rooms")).to_be_hidden()


def public_room(stack):
    """Create a public room over HTTP (before the pages that should join it open); return its name."""
    token = register(stack.url, f"o{uuid.uuid4().hex[:8]}")
    name = f"r{uuid.uuid4().hex[:8]}"
    response = requests.post(
        f"{stack.url}/api/rooms",
        json={"name": name, "private": False, "members": []},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return name, token


def stored_messages(stack, room, token):
    """Return the room's messages as the server stores them: [(seq, text)], oldest first."""
    response = requests.get(
        f"{stack.url}/api/rooms/{room}/messages",
        params={"since_seq": 0, "limit": 1000},
        headers=bearer(token),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [(message["seq"], message["text"]) for message in response.json()]


def assert_shows_exactly(page, stored):
    """Assert the page shows every stored message once, in seq order, and nothing else.

    The list renders a bounded window of a long room: the walk scrolls up through all of it.
    """
    assert every_message_shown(page, len(stored)) == stored
    assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1))  # and seqs have no holes


def emit_from_server(stack, event, data, namespace):
    """Emit to every client of a namespace through the stack's Redis channel, as its processes do."""
    channel = stack.env["REDIS_KEY_PREFIX"] + "socketio"
    socketio.RedisManager(stack.env["REDIS_URL"], channel=channel, write_only=True).emit(
        event, data, namespace=namespace
    )


def test_two_people_and_a_busy_third_see_every_message_once_in_seq_order(person, stack):
    room, token = public_room(stack)
    alice, bob = person(), person()
    open_room(alice, room)
    open_room(bob, room)

    # A third client sends a burst while both pages send: their messages interleave.
    third = SocketClient(stack.url, token, "websocket").connect()
    burst = threading.Thread(
        target=lambda: [third.call("send", {"room": room, "text": f"burst {n}"}) for n in range(20)]
    )
    try:
        burst.start()
        for n in range(5):
            send(alice, f"alice {n}")
            send(bob, f"bob {n}")
        expect(alice.locator("#messages li", has_text="bob 4")).to_have_count(1)
        burst.join(timeout=30)
    finally:
        third.close()
    stored = stored_messages(stack, room, token)
    assert len(stored) == 30
    assert_shows_exactly(alice, stored)
    assert_shows_exactly(bob, stored)


def test_a_missed_live_message_is_fetched_when_the_next_one_shows_the_hole(person, stack):
    room, token = public_room(stack)
    alice, bob = person(wire=True), person()
    open_room(bob, room)
    open_room(alice, room)  # joining a public room is a choice, made in the room browser
    open_room(alice, "general")
    badge = alice.locator("#rooms button", has_text=room).locator(".unread")

    send(bob, "one")
    expect(badge).to_have_text("1")  # alice reads general: the room counts it unread
    alice.wire.lose("/chat", "message", room=room, text="two")
    send(bob, "two")
    wait_until(alice, lambda: alice.wire.lost)
    expect(bob.locator("#messages li", has_text="two")).to_have_count(1)
    alice.wait_for_timeout(300)
    expect(badge).to_have_text("1")  # nothing arrived

    send(bob, "three")  # seq 3 after seq 1: alice fetches seq 2, then shows 2 and 3
    expect(badge).to_have_text("3")  # each shown once: no held-back message or duplicate counted
    assert ("/chat", "history", {"room": room, "since_seq": 1, "limit": 100}) in alice.wire.sent
    open_room(alice, room)
    stored = stored_messages(stack, room, token)
    assert [text for _, text in stored] == ["one", "two", "three"]
    assert_shows_exactly(alice, stored)
    expect(badge).to_have_count(0)


def test_a_resync_makes_the_page_join_again_and_show_what_it_missed(person, stack):
    room, token = public_room(stack)
    alice, bob = person(wire=True), person()
    open_room(alice, room)
    open_room(bob, room)
    send(bob, "one")
    expect(alice.locator("#messages li", has_text="one")).to_have_count(1)

    # The server lost live events (as when a publish to Redis failed); no later message shows the hole.
    alice.wire.lose("/chat", "message", room=room, text="two")
    send(bob, "two")
    wait_until(alice, lambda: alice.wire.lost)
    expect(bob.locator("#messages li", has_text="two")).to_have_count(1)
    emit_from_server(stack, "resync", {"reason": "publish"}, "/chat")

    expect(alice.locator("#messages li", has_text="two")).to_have_count(1)
    assert ("/chat", "join", {"room": room, "since_seq": 1, "edits_since": 0}) in alice.wire.sent
    assert_shows_exactly(alice, stored_messages(stack, room, token))
    expect(alice.locator("#connection")).to_have_text("connected")


def test_a_job_watcher_reads_the_job_again_after_a_version_jump_or_a_resync(person, stack):
    alice = person(wire=True)
    alice.wire.lose("/jobs", "progress", detail="step 2 of 20")
    alice.click("#demo-job")
    running = alice.locator(".job[data-status=running]")
    expect(running).to_have_count(1)
    wait_until(alice, lambda: alice.wire.lost)
    job_id = alice.wire.lost[0][2]["job_id"]
    # The next progress event comes two versions on: the page asks for the job instead of trusting it.
    wait_until(alice, lambda: ("/jobs", "watch", {"job_id": job_id}) in alice.wire.sent)
    expect(running.locator("progress")).not_to_have_attribute("value", "5")

    # Its done is lost; a cancelled job sends nothing after it: only the resync tells the page.
    alice.wire.lose("/jobs", "done", job_id=job_id)
    running.locator("button", has_text="Cancel").click()
    wait_until(alice, lambda: len(alice.wire.lost) == 2)
    alice.wait_for_timeout(300)
    expect(running).to_have_count(1)
    emit_from_server(stack, "resync", {"reason": "listener"}, "/jobs")
    expect(alice.locator(".job[data-status=cancelled]")).to_have_count(1)


def test_a_done_after_a_missed_event_shows_the_finished_job_from_a_fresh_read(person):
    alice = person(wire=True)
    send(alice, "something to export")
    expect(alice.locator("#messages li", has_text="something to export")).to_have_count(1)
    alice.wire.lose("/jobs", "progress", detail="finished")  # the last event before done
    alice.click("#export-json")
    link = alice.locator(".job[data-status=succeeded] a", has_text="Download")
    expect(link).to_be_visible()
    expect(alice.locator(".job[data-status=succeeded] progress")).to_have_attribute("value", "100")
    job_id = alice.wire.lost[0][2]["job_id"]
    assert ("/jobs", "watch", {"job_id": job_id}) in alice.wire.sent


def test_a_catch_up_past_the_join_cap_pages_on_with_history(person, stack):
    room, token = public_room(stack)
    alice = person(wire=True)
    open_room(alice, room)
    send(alice, "first")
    expect(alice.locator("#messages li", has_text="first")).to_have_count(1)

    # Stored with no broadcast (as by a process whose publishes were lost), more than one join may bring.
    cap = stack_config(stack).JOIN_CATCHUP_LIMIT
    cap = int(stack.env.get("JOIN_CATCHUP_LIMIT", cap))
    store_messages(stack, room, alice.username, [f"stored {n}" for n in range(cap + 150)])
    emit_from_server(stack, "resync", {"reason": "publish"}, "/chat")

    stored = stored_messages(stack, room, token)
    assert len(stored) == cap + 151
    assert_shows_exactly(alice, stored)
    assert ("/chat", "join", {"room": room, "since_seq": 1, "edits_since": 0}) in alice.wire.sent
    if cap:  # the join brought `cap` of them (`more`); history since_seq brought the rest
        assert ("/chat", "history", {"room": room, "since_seq": 1 + cap, "limit": 100}) in alice.wire.sent
    expect(alice.locator("#connection")).to_have_text("connected")


def test_a_join_the_server_could_not_answer_is_tried_again_and_a_refused_one_is_not(person, stack):
    room, token = public_room(stack)
    other, _ = public_room(stack)
    alice = person(wire=True)
    open_room(alice, other)  # joined by choice: a resync joins it again
    open_room(alice, room)
    send(alice, "first")
    expect(alice.locator("#messages li", has_text="first")).to_have_count(1)
    store_messages(stack, room, alice.username, ["missed"])  # no broadcast: only a join brings it

    alice.wire.refuse("/chat", "join", "unavailable", room=room)
    alice.wire.refuse("/chat", "join", "internal", room=room)
    alice.wire.refuse("/chat", "join", "forbidden", room=other)
    before = len(alice.wire.sent)
    emit_from_server(stack, "resync", {"reason": "listener"}, "/chat")
    expect(alice.locator("#connection")).to_have_text("catching up…")  # out of the room, trying again
    expect(alice.locator("#messages li", has_text="missed")).to_have_count(1)
    expect(alice.locator("#connection")).to_have_text("connected")

    def joins(name):
        sent = alice.wire.sent[before:]
        return [data for ns, event, data in sent if (ns, event) == ("/chat", "join") and data["room"] == name]

    # Refused twice (0.5 s, then 1 s apart), then joined.
    assert joins(room) == [{"room": room, "since_seq": 1, "edits_since": 0}] * 3
    assert len(joins(other)) == 1  # forbidden: asking again would not help
    assert_shows_exactly(alice, stored_messages(stack, room, token))


def test_log_out_everywhere_ends_the_other_tab_and_the_page_keeps_to_its_csp(browser, stack):
    name = f"x{uuid.uuid4().hex[:8]}"
    register(stack.url, name)
    contexts, problems = [], []
    try:
        pages = []
        for _ in range(2):  # two browsers of one user
            context = browser.new_context(base_url=stack.url)
            context.set_default_timeout(WAIT_MS)
            contexts.append(context)
            page = context.new_page()
            # A request the ended login makes may fail with 401 (and say so); a CSP violation may not.
            page.on(
                "console", lambda message: "Content Security Policy" in message.text and problems.append(message.text)
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto("/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", "correct horse")
            page.click("button[type=submit]")
            expect(page.locator("#connection")).to_have_text("connected")
            pages.append(page)
        csp = pages[0].request.get("/").headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp

        pages[0].click("text=Log out everywhere")
        expect(pages[0]).to_have_url(f"{stack.url}/login")
        # The other browser's sockets are disconnected, and its reconnect is refused: back to the login page.
        expect(pages[1]).to_have_url(f"{stack.url}/login")
        assert problems == [], problems  # no CSP violation, no script error
    finally:
        for context in contexts:
            context.close()
