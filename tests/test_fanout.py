"""The per-protocol fan-out loops: the hottest code of a burst (one iteration per delivery)."""

from __future__ import annotations

from triochat.core.codec import Mode, encode_plain
from triochat.core.events import Said
from triochat.core.model import Member, Query
from triochat.core.protocols.json import JSON
from triochat.core.protocols.plain import PLAIN


class Recorder:
    """A link that keeps what it is given; ``room`` says how many items it takes."""

    def __init__(self, room: int = 100) -> None:
        self.got: list[bytes] = []
        self.room = room

    def put(self, data: bytes) -> bool:
        if len(self.got) >= self.room:
            return False
        self.got.append(data)
        return True

    def replay(self, query: Query) -> None:
        raise AssertionError("not in a fan-out")

    def close(self) -> None:
        raise AssertionError("not in a fan-out")

    def cut(self) -> None:
        raise AssertionError("not in a fan-out")


def _member(i: int, current: str | None, mode: Mode = Mode.PLAIN, room: int = 100) -> Member:
    return Member(i, f"peer{i}", Recorder(room), f"m{i}", mode, ["#dev", "#ops"], current)


def _got(member: Member) -> list[bytes]:
    assert isinstance(member.link, Recorder)
    return member.link.got


def test_plain_fanout_sends_each_variant_and_skips_the_sender() -> None:
    event = Said(1.0, "#dev", 7, "m0", "hello")
    here = [_member(i, "#dev") for i in range(3)]
    elsewhere = [_member(i, "#ops") for i in range(3, 5)]
    members = {m.id: m for m in [*here, *elsewhere]}
    too_slow: list[Member] = []
    PLAIN.fanout(event, members, "#dev", here[0], too_slow)
    assert _got(here[0]) == []
    for m in here[1:]:
        assert _got(m) == [encode_plain(event, None, "#dev")]
    for m in elsewhere:
        assert _got(m) == [encode_plain(event, None, "")]
    assert encode_plain(event, None, "#dev") != encode_plain(event, None, "")  # two variants
    assert too_slow == []


def test_fanout_reports_full_links_as_too_slow_and_goes_on() -> None:
    event = Said(1.0, "#dev", 7, "m0", "hello")
    for protocol, mode in ((PLAIN, Mode.PLAIN), (JSON, Mode.JSON)):
        full_here = _member(1, "#dev", mode, room=0)
        full_there = _member(2, "#ops", mode, room=0)
        fine = _member(3, "#dev", mode)
        members = {m.id: m for m in (full_here, full_there, fine)}
        too_slow: list[Member] = []
        protocol.fanout(event, members, "#dev", None, too_slow)
        assert too_slow == [full_here, full_there]
        assert len(_got(fine)) == 1


def test_modes_key_dicts_by_identity() -> None:
    """Mode hashes as object does (C, not Enum's Python __hash__) and stays a dict key."""
    table = {Mode.PLAIN: 1, Mode.JSON: 2, Mode.IRC: 3}
    assert table[Mode("json")] == 2
    assert type(Mode).__dict__.get("__hash__") is None  # the metaclass is not touched
    assert vars(Mode)["__hash__"] is vars(object)["__hash__"]
