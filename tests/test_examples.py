"""examples/polls.py, the README's namespace: it works, keeps private rooms private, and the README shows it."""

import re
from pathlib import Path

import pytest

from examples.polls import PollSocket
from extensions import db, socketio
from models import User
from services import chat

pytestmark = pytest.mark.unit

NS = "/polls"
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def polls(app):
    """Serve /polls on the test app, as one line in socket_views.register_namespaces would."""
    socketio.on_namespace(PollSocket(NS))
    return lambda client, event, data: client.emit(event, data, callback=True, namespace=NS)


def asked(client):
    """Return the questions the client received."""
    return [event["args"][0] for event in client.get_received(NS) if event["name"] == "asked"]


def private_room(app, name, *members):
    """Create a private room whose only members are `members`."""
    with app.app_context():
        creator = db.session.scalar(db.select(User).filter_by(username=members[0]))
        chat.create_room(name, True, list(members[1:]), creator)
        db.session.remove()


def test_followers_of_a_room_receive_its_questions(polls, connect, alice, bob):
    a, b = connect(alice, namespace=NS), connect(bob, namespace=NS)
    assert polls(b, "follow", {"room": "general"}) == {"ok": True, "room": "general"}
    assert polls(a, "ask", {"room": "general", "question": "Lunch?"}) == {"ok": True, "question": "Lunch?"}
    assert asked(b) == [{"room": "general", "by": "alice", "question": "Lunch?"}]
    assert asked(a) == []  # alice did not follow


def test_outsiders_of_a_private_room_can_neither_follow_nor_ask(app, polls, connect, alice, bob):
    private_room(app, "secret", "alice")
    a, b = connect(alice, namespace=NS), connect(bob, namespace=NS)
    assert polls(a, "follow", {"room": "secret"})["ok"]
    for event, data in (("follow", {"room": "secret"}), ("ask", {"room": "secret", "question": "In?"})):
        assert polls(b, event, data)["error"]["code"] == "not_found"  # as for a room that does not exist
    assert asked(a) == []


def test_bad_payloads_are_answered_invalid(polls, connect, alice):
    a = connect(alice, namespace=NS)
    assert polls(a, "ask", {"room": "general", "question": ""})["error"]["code"] == "invalid"
    assert polls(a, "follow", {"room": "no such name!"})["error"]["code"] == "invalid"
    assert not connect(None, namespace=NS).is_connected(NS)


def test_the_readme_shows_the_example_as_it_is():
    blocks = re.findall(r"```python\n# examples/polls.py\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README's Adding a namespace has a ```python block starting with # examples/polls.py"
    example = (README.parent / "examples" / "polls.py").read_text()
    assert blocks[0] == example.split('"""\n', 2)[-1].lstrip("\n")  # the file minus its module docstring
