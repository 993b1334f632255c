"""The client manager keeps each client's rooms indexed, so disconnects stay cheap."""

import time

import socketio

from socket_manager import IndexedManager


def connect_clients(manager, count, namespace="/chat"):
    """Enter `count` clients as python-socketio does (the None room, their own room), plus a shared room."""
    for n in range(count):
        sid = f"s{n}"
        for room in (None, sid, "room:general"):
            manager.basic_enter_room(sid, namespace, room, eio_sid=f"e{n}")


def test_rooms_are_tracked_through_join_leave_and_disconnect():
    manager = IndexedManager()
    connect_clients(manager, 2)
    manager.basic_enter_room("s0", "/chat", "room:x")
    assert sorted(manager.get_rooms("s0", "/chat")) == ["room:general", "room:x", "s0"]
    manager.basic_leave_room("s0", "/chat", "room:x")
    assert sorted(manager.get_rooms("s0", "/chat")) == ["room:general", "s0"]

    manager.basic_disconnect("s0", "/chat")
    assert manager.get_rooms("s0", "/chat") == []
    assert all("s0" not in members for members in manager.rooms["/chat"].values())
    assert dict(manager.rooms["/chat"]["room:general"]) == {"s1": "e1"}  # the other client stays


def disconnect_all_seconds(manager, count):
    """Time disconnecting `count` connected clients one by one."""
    connect_clients(manager, count)
    started = time.perf_counter()
    for n in range(count):
        manager.basic_disconnect(f"s{n}", "/chat")
    return time.perf_counter() - started


def test_a_mass_disconnect_costs_each_client_its_own_rooms():
    ours = disconnect_all_seconds(IndexedManager(), 3000)
    theirs = disconnect_all_seconds(socketio.Manager(), 3000)  # tests every room for every client
    assert ours * 20 < theirs, f"indexed {ours:.3f} s, python-socketio's {theirs:.3f} s"
