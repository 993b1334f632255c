"""The Socket.IO Admin UI (/admin/, resources/socket/admin_ui.py) against two web processes on Redis.

An admin connected to one process sees the sockets, rooms and events of both (in
Debian's Chromium); a non-admin is refused; the page loads nothing from other sites
and breaks no CSP rule; handshakes are shown without credentials; nothing is published
for the UI while no admin watches; full-mode actions reach the other process's sockets;
the `flask users` admin commands work. Screenshots go to test-artifacts/screenshots/admin-*.png.

The first process runs read-only (the default), the second with ADMIN_UI_FULL=1.
"""

import json
import subprocess
import threading
import time

import pytest
import redis
import socketio

from devtools.embedded_redis import free_port
from tests.browsers import SCREENSHOTS, WAIT_MS
from tests.clients import register
from tests.realstack import PROJECT_ROOT, procfile_command, running_stack

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

ADMIN, ADMIN_PASSWORD = "root", "admin password"
USER_PASSWORD = "correct horse"  # what tests.clients.register gives
LOGIN_NEEDED = "log in with a Roomcast admin's username and password"
expect.set_options(timeout=WAIT_MS)


def flask_users(stack, *args, password=None):
    """Run `flask --app app users ARGS` on the stack's database and Redis; return its output."""
    command = [*procfile_command("release")[:-2], "users", *args]  # flask --app app ...
    answer = subprocess.run(
        command,
        input=f"{password}\n{password}\n" if password else None,
        text=True,
        env=stack.env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


@pytest.fixture(scope="module")
def stack(tmp_root, redis_url):
    """Two web processes with ADMIN_UI=1 on one Redis (the second in full mode); an admin made with the CLI; bob."""
    with running_stack(tmp_root, redis_url, "admin-ui", ADMIN_UI="1") as stack:
        stack.start_web()
        read_only_env = stack.env
        stack.env = {**read_only_env, "ADMIN_UI_FULL": "1"}
        other_port = free_port()
        stack.other_url = f"http://127.0.0.1:{other_port}"
        stack.start_web(port=other_port)
        stack.env = read_only_env
        assert (
            flask_users(stack, "create-admin", ADMIN, password=ADMIN_PASSWORD).strip()
            == f"{ADMIN} is created, an admin"
        )
        register(stack.url, "bob")
        yield stack


def admin_client(url, username=ADMIN, password=ADMIN_PASSWORD):
    """Connect a Socket.IO client to the /admin namespace as the UI's login form does; return it."""
    admin = socketio.Client(reconnection=False)
    admin.connect(url, namespaces=["/admin"], auth={"username": username, "password": password}, wait_timeout=10)
    return admin


def user_client(url, username):
    """Register username; return a Socket.IO client connected to /chat with its token."""
    user = socketio.Client(reconnection=False)
    user.connect(url, namespaces=["/chat"], auth={"token": register(url, username)}, wait_timeout=10)
    return user


def wait_until(predicate, seconds=10):
    """Wait until predicate() is true; return whether it became so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_nothing_is_published_for_the_ui_until_an_admin_watches_then_every_process_reports(stack, redis_url):
    # First in this module: no admin has connected to this stack yet.
    channel = redis.Redis.from_url(redis_url).pubsub()
    channel.subscribe(stack.env["REDIS_KEY_PREFIX"] + "socketio")
    reports, servers, done = [], set(), threading.Event()

    def listen():
        while not done.is_set():
            message = channel.get_message(timeout=0.2)
            if message is not None and message["type"] == "message":
                data = json.loads(message["data"])
                if data.get("namespace") == "/admin":
                    reports.append(data["event"])
                    if data["event"] == "server_stats":
                        servers.add(data["data"][0]["serverId"])

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    user = user_client(stack.other_url, f"dave{free_port()}")  # an Engine.IO client on the other process too
    user.call("join", {"room": "general"}, namespace="/chat", timeout=10)
    user.call("send", {"room": "general", "text": "nobody watches", "client_id": "c1"}, namespace="/chat", timeout=10)
    time.sleep(3)  # past a server_stats interval
    assert reports == []

    admin = admin_client(stack.url)
    assert wait_until(lambda: len(servers) == 2), servers  # both processes report to the admin
    admin.disconnect()
    user.disconnect()
    done.set()
    listener.join()
    channel.close()


def test_the_ui_is_shown_no_credentials_and_refuses_others(stack):
    reports = []
    admin = socketio.Client(reconnection=False)
    admin.on("all_sockets", lambda sockets: reports.extend(sockets), namespace="/admin")
    admin.on("socket_connected", lambda socket, _: reports.append(socket), namespace="/admin")
    user = socketio.Client(reconnection=False)
    token = register(stack.other_url, f"carol{free_port()}")
    headers = {"Cookie": "session=secret", "Authorization": "Bearer secret"}
    user.connect(stack.other_url, namespaces=["/chat"], auth={"token": token}, headers=headers, wait_timeout=10)
    admin.connect(stack.url, namespaces=["/admin"], auth={"username": ADMIN, "password": ADMIN_PASSWORD})
    sid = user.get_sid("/chat")
    # The user is on the other process: it tells the new admin of its sockets.
    assert wait_until(lambda: any(socket["id"] == sid for socket in reports))
    shown = [socket for socket in reports if socket["id"] == sid]
    assert all(socket["handshake"]["headers"]["cookie"] == "(hidden)" for socket in shown)
    assert all(socket["handshake"]["headers"]["authorization"] == "(hidden)" for socket in shown)
    assert "secret" not in json.dumps(reports)
    admin.disconnect()
    user.disconnect()
    for auth, message in (
        ({"username": ADMIN, "password": "wrong"}, "invalid credentials"),
        ({"username": "bob", "password": USER_PASSWORD}, "invalid credentials"),  # right password, no admin
        ({"sessionId": None}, LOGIN_NEEDED),  # the UI's first connect, with no login cookie
    ):
        refused, errors = socketio.Client(reconnection=False), []
        refused.on("connect_error", errors.append, namespace="/admin")
        with pytest.raises(socketio.exceptions.ConnectionError):
            refused.connect(stack.url, namespaces=["/admin"], auth=auth, wait_timeout=10)
        assert errors == [{"message": message}]
        refused.disconnect()


def test_full_mode_actions_reach_the_other_processs_sockets_and_read_only_has_none(stack):
    user = user_client(stack.url, f"erin{free_port()}")  # on the read-only process
    sid = user.get_sid("/chat")
    dropped = threading.Event()
    user.on("disconnect", lambda *_: dropped.set(), namespace="/chat")

    read_only = admin_client(stack.url)
    read_only.emit("_disconnect", ("/chat", False, sid), namespace="/admin")
    read_only.emit("join", ("/chat", "room:from-admin", sid), namespace="/admin")
    assert not dropped.wait(1.5)

    full = admin_client(stack.other_url)
    joined = threading.Event()
    full.on(
        "room_joined",
        lambda nsp, room, who, _: joined.set() if (room, who) == ("room:from-admin", sid) else None,
        "/admin",
    )
    full.emit("join", ("/chat", "room:from-admin", sid), namespace="/admin")
    assert joined.wait(10)  # reported by the read-only process, where the socket is
    full.emit("_disconnect", ("/chat", False, sid), namespace="/admin")
    assert dropped.wait(10)
    for client in (read_only, full, user):
        client.disconnect()


def test_revoke_admin_disconnects_the_admins_ui(stack):
    name = f"frank{free_port()}"
    register(stack.url, name)
    assert flask_users(stack, "grant-admin", name).strip() == f"{name} is an admin"
    admin = admin_client(stack.other_url, name, USER_PASSWORD)
    dropped = threading.Event()
    admin.on("disconnect", lambda *_: dropped.set(), namespace="/admin")
    assert flask_users(stack, "revoke-admin", name).strip() == f"{name} is no longer an admin"
    assert dropped.wait(10)  # through Redis, from the command's process
    with pytest.raises(socketio.exceptions.ConnectionError):
        admin_client(stack.other_url, name, USER_PASSWORD)


def admin_page(browser, url):
    """Open /admin/ in a new context; return the page, with the CSP violations and off-site requests it makes."""
    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    off_site = []
    page.on("request", lambda r: off_site.append(r.url) if not r.url.startswith(url) else None)
    page.goto("/admin/")
    page.violations, page.off_site = violations, off_site
    return page


def log_in(page, username, password):
    """Fill the UI's connection form (its server URL is prefilled with this server) and connect."""
    expect(page.get_by_role("textbox", name="Server URL")).to_have_value(page.url.split("/admin/")[0])
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Connect").click()


def status(page):
    """Return the UI's connection status chip (the one shown at this width)."""
    return page.locator(".v-chip__content").filter(visible=True).filter(has_text="connected")


def chat_page(browser, url, username, password=USER_PASSWORD):
    """Log in to Roomcast's chat page on url as username; return the page once it is connected."""
    context = browser.new_context(base_url=url)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("connected")
    return page


def test_an_admin_sees_the_sockets_rooms_and_events_of_every_process(stack, browser):
    bob = chat_page(browser, stack.other_url, "bob")  # on the other process
    page = admin_page(browser, stack.url)
    expect(page.get_by_text(LOGIN_NEEDED)).to_be_visible()
    log_in(page, ADMIN, ADMIN_PASSWORD)
    expect(status(page)).to_have_text("connected")
    page.screenshot(path=SCREENSHOTS / "admin-dashboard.png")

    page.goto("/admin/#/servers")
    expect(page.locator("tbody tr")).to_have_count(2)  # both processes report their figures

    page.goto("/admin/#/sockets")
    page.get_by_role("button", name="Select namespace").click()
    page.get_by_role("option", name="/chat").click()  # chosen for the other pages too
    expect(page.locator("tbody tr")).to_have_count(1)  # bob's /chat socket, though on the other process
    page.screenshot(path=SCREENSHOTS / "admin-sockets.png")

    page.goto("/admin/#/rooms")
    expect(page.get_by_role("cell", name="room:general", exact=True)).to_be_visible()

    bob.fill("#text", "hello admins")
    bob.press("#text", "Enter")
    page.goto("/admin/#/events")
    expect(page.get_by_role("row").filter(has_text="Event received").filter(has_text="send")).not_to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="Event sent").filter(has_text="message")).not_to_have_count(0)
    page.screenshot(path=SCREENSHOTS / "admin-events.png")

    bob.context.close()  # bob leaves: his sockets go, and his rooms with them (reported as left)
    page.goto("/admin/#/rooms")
    expect(page.get_by_role("cell", name="room:general", exact=True)).to_have_count(0)

    assert page.violations == []
    assert page.off_site == []
    page.context.close()


def test_a_non_admin_is_refused_by_the_form(stack, browser):
    page = admin_page(browser, stack.url)
    log_in(page, "bob", USER_PASSWORD)  # a right password, but no admin
    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(status(page)).to_have_text("disconnected")
    page.screenshot(path=SCREENSHOTS / "admin-refused.png")
    page.context.close()


def test_the_browsers_admin_login_lets_the_ui_in_and_a_users_does_not(stack, browser):
    for username, password, admitted in ((ADMIN, ADMIN_PASSWORD, True), ("bob", USER_PASSWORD, False)):
        chat = chat_page(browser, stack.url, username, password)
        page = chat.context.new_page()  # beside the chat page, in the same browser
        page.goto("/admin/#/sockets")  # no form to fill: the session cookie comes with the handshake
        if admitted:
            expect(status(page)).to_have_text("connected")
            page.get_by_role("button", name="Select namespace").click()
            page.get_by_role("option", name="/chat").click()
            expect(page.locator("tbody tr")).not_to_have_count(0)  # the chat page's socket, at least
            page.screenshot(path=SCREENSHOTS / "admin-own-socket.png")
        else:
            expect(page.get_by_text(LOGIN_NEEDED)).to_be_visible()
        chat.context.close()
