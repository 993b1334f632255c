"""The cheaper event and connect paths (docs/benchmarks.md, "Event and connect paths") behave as before."""

import pytest
from geventwebsocket.utf8validator import Utf8Validator

from resources.socket.gunicorn_worker import Utf8Check

pytestmark = pytest.mark.unit

UTF8_CASES = [
    [b'42/chat,1["send",{"text":"hello"}]'],
    ["héllo wörld €𝄞".encode()],
    [b"\xc3", b"\xa9"],  # a character split across two frames
    [b"a\xf0\x9d", b"\x84\x9e b"],
    [b"\xff"],
    [b"ok", b"\xc3\x28"],  # an invalid continuation byte
    [b"\xed\xa0\x80"],  # a UTF-16 surrogate, encoded: not UTF-8
    [b"\xc0\xaf"],  # overlong
    [b"\xf4\x90\x80\x80"],  # past U+10FFFF
    [b""],
]


@pytest.mark.parametrize("frames", UTF8_CASES)
def test_the_utf8_check_agrees_with_gevent_websockets_own(frames):
    ours, theirs = Utf8Check(), Utf8Validator()
    for frame in frames:
        mine, reference = ours.validate(frame), theirs.validate(frame)
        assert mine[:2] == reference[:2]
        if not reference[0]:
            break
    ours.reset()
    assert ours.validate("é".encode())[0]
