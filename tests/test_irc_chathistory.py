"""IRC history: draft/chathistory answered from the store, labeled-response, and the
playback on JOIN for IRC clients that do not ask for history themselves. In memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import trio
import trio.testing

from tests.test_irc import S, irc_join, lines_until, server_for
from tests.test_irc_sasl import register
from triochat.core.ircchathistory import Chathistory, Ref, millis, parse_ref, plan
from triochat.core.protocols.ircevents import ISUPPORT
from triochat.core.protocols.ircsession import CHATHISTORY_LIMIT
from triochat.core.records import Batch, StoredMessage, StoredPrivate
from triochat.server import ChatServer
from triochat.store.memory import MemoryStore
from triochat.store.sqlite import SQLiteStore
from triochat.testing import Peer, join, open_test_server

HISTORY_CAPS = ("server-time", "message-tags", "echo-message", "batch", "draft/chathistory")


def verb_of(text: str) -> str:
    words = text.split()
    if text.startswith("@"):
        words = words[1:]
    return words[1] if words[0].startswith(":") else words[0]


def tags_of(text: str) -> dict[str, str]:
    if not text.startswith("@"):
        return {}
    pairs = (part.partition("=") for part in text[1:].split(" ", 1)[0].split(";"))
    return {key: value for key, _, value in pairs}


async def batch(peer: Peer) -> tuple[str, list[str]]:
    """A whole batch: its opening line, and the lines inside (all tagged with it)."""
    start = (await peer.line()).rstrip("\r")
    assert verb_of(start) == "BATCH", start
    ref = start.split("BATCH ", 1)[1].split()[0]
    assert ref.startswith("+")
    inner: list[str] = []
    while True:
        text = (await peer.line()).rstrip("\r")
        if text.endswith(f"BATCH -{ref[1:]}"):
            return start, inner
        assert tags_of(text)["batch"] == ref[1:], text
        inner.append(text)


async def chatty_room(nursery: trio.Nursery, count: int) -> tuple[ChatServer, Peer, list[str]]:
    """#dev with ``count`` lines (alternately from an IRC and a plain member), and the
    IRC member's own copies of them (echo-message), as the history must give them back."""
    server = await server_for(nursery)
    irc = await irc_join(nursery, server, "ivy", *HISTORY_CAPS)
    await irc.send("JOIN #dev")
    await lines_until(irc, "366")
    plain = await join(nursery, server, "pat")
    await plain.send("/join #dev")
    await lines_until(irc, "JOIN")
    seen: list[str] = []
    for i in range(count):
        if i % 2:
            await plain.send(f"line {i}")
        else:
            await irc.send(f"PRIVMSG #dev :line {i}")
        seen.append((await irc.line()).rstrip("\r"))
        await trio.sleep(0.003)  # distinct milliseconds for the timestamp refs
    await trio.testing.wait_all_tasks_blocked()
    return server, irc, seen


def unbatched(text: str) -> str:
    """A line from a batch without its batch tag (the first: ``tag_line`` puts it there)."""
    assert text.startswith("@batch=")
    return "@" + text.split(";", 1)[1]


def ref(text: str, kind: str) -> str:
    return f"{kind}={tags_of(text)['msgid' if kind == 'msgid' else 'time']}"


async def test_caps_and_isupport_announce_chathistory(nursery: trio.Nursery) -> None:
    server = await server_for(nursery)
    peer = await irc_join(nursery, server, "ann")
    await peer.send("CAP LS 302")
    offered = (await peer.line()).split(" :", 1)[1].split()
    assert {"draft/chathistory", "batch", "labeled-response"} <= set(offered)
    assert "draft/event-playback" not in offered  # only chat lines are stored
    assert f"CHATHISTORY={CHATHISTORY_LIMIT}" in ISUPPORT
    assert "MSGREFTYPES=msgid,timestamp" in ISUPPORT


async def test_latest_is_a_batch_of_the_stored_lines_with_time_and_msgid(
    nursery: trio.Nursery,
) -> None:
    """LATEST gives the same lines, tags and all, that were seen live, from every mode."""
    server, irc, seen = await chatty_room(nursery, 6)
    before = server.hub.history.statistics().replays
    await irc.send("CHATHISTORY LATEST #dev * 50")
    start, inner = await batch(irc)
    assert start.endswith("BATCH " + start.split("BATCH ")[1].split()[0] + " chathistory #dev")
    assert [unbatched(line) for line in inner] == seen
    assert server.hub.history.statistics().replays == before + 1  # read through the reader
    await irc.send("CHATHISTORY LATEST #dev * 2")
    assert [unbatched(line) for line in (await batch(irc))[1]] == seen[-2:]
    for kind in ("msgid", "timestamp"):
        await irc.send(f"CHATHISTORY LATEST #dev {ref(seen[2], kind)} 50")
        assert [unbatched(line) for line in (await batch(irc))[1]] == seen[3:]


@pytest.mark.parametrize("kind", ["msgid", "timestamp"])
async def test_before_after_between_around(nursery: trio.Nursery, kind: str) -> None:
    _server, irc, seen = await chatty_room(nursery, 10)

    async def ask(request: str) -> list[str]:
        await irc.send(request)
        return [unbatched(line) for line in (await batch(irc))[1]]

    assert await ask(f"CHATHISTORY BEFORE #dev {ref(seen[6], kind)} 20") == seen[:6]
    assert await ask(f"CHATHISTORY BEFORE #dev {ref(seen[6], kind)} 2") == seen[4:6]
    assert await ask(f"CHATHISTORY AFTER #dev {ref(seen[3], kind)} 20") == seen[4:]
    assert await ask(f"CHATHISTORY AFTER #dev {ref(seen[3], kind)} 3") == seen[4:7]
    first, last = ref(seen[0], kind), ref(seen[-1], kind)
    assert await ask(f"CHATHISTORY BETWEEN #dev {first} {last} 20") == seen[1:-1]
    assert await ask(f"CHATHISTORY BETWEEN #dev {last} {first} 20") == seen[1:-1]
    assert await ask(f"CHATHISTORY BETWEEN #dev {first} {last} 3") == seen[1:4]
    assert await ask(f"CHATHISTORY BETWEEN #dev {last} {first} 3") == seen[-4:-1]
    assert await ask(f"CHATHISTORY AROUND #dev {ref(seen[7], kind)} 1") == [seen[7]]
    assert await ask(f"CHATHISTORY AROUND #dev {ref(seen[7], kind)} 3") == seen[6:9]


async def test_errors_are_fail_lines(nursery: trio.Nursery) -> None:
    server, irc, _seen = await chatty_room(nursery, 1)
    other = await irc_join(nursery, server, "oz")
    await other.send("JOIN #elsewhere")
    await lines_until(other, "366")

    async def fail(request: str) -> list[str]:
        await irc.send(request)
        text = (await irc.line()).rstrip("\r")
        assert text.startswith(f":{S} FAIL CHATHISTORY "), text
        return text.split()[3:5]

    assert await fail("CHATHISTORY LATEST #nowhere * 10") == ["INVALID_TARGET", "LATEST"]
    assert await fail("CHATHISTORY LATEST #elsewhere * 10") == ["INVALID_TARGET", "LATEST"]
    assert await fail("CHATHISTORY BEFORE #dev msgid=other-1 10") == ["INVALID_PARAMS", "BEFORE"]
    assert await fail("CHATHISTORY BEFORE #dev * 10") == ["INVALID_PARAMS", "BEFORE"]
    assert await fail("CHATHISTORY AFTER #dev timestamp=yesterday 10") == [
        "INVALID_PARAMS",
        "AFTER",
    ]
    assert await fail("CHATHISTORY LATEST #dev * many") == ["INVALID_PARAMS", "LATEST"]
    assert await fail("CHATHISTORY SIDEWAYS #dev * 10") == ["INVALID_PARAMS", "SIDEWAYS"]
    assert await fail("CHATHISTORY BETWEEN #dev * 10") == ["NEED_MORE_PARAMS", "BETWEEN"]
    # A nick, asked by a member not logged in (no private history): an empty batch.
    await irc.send("CHATHISTORY LATEST pat * 10")
    start, inner = await batch(irc)
    assert start.endswith("chathistory pat")
    assert inner == []


async def test_targets_lists_joined_channels_by_latest_line(nursery: trio.Nursery) -> None:
    _server, irc, seen = await chatty_room(nursery, 2)
    await irc.send("JOIN #quiet\r\nJOIN #late")
    await lines_until(irc, "366")
    await lines_until(irc, "366")
    await irc.send("PRIVMSG #late :latest")
    late = (await irc.line()).rstrip("\r")
    await trio.testing.wait_all_tasks_blocked()
    everything = "timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z"
    await irc.send(f"CHATHISTORY TARGETS {everything} 10")
    start, inner = await batch(irc)
    assert start.endswith("draft/chathistory-targets")
    when = {name: tags_of(text)["time"] for name, text in (("#dev", seen[-1]), ("#late", late))}
    assert [line.split()[-2:] for line in inner] == [[n, when[n]] for n in ("#dev", "#late")]
    await irc.send(f"CHATHISTORY TARGETS timestamp={when['#dev']} {everything.split()[1]} 10")
    assert [line.split()[-2] for line in (await batch(irc))[1]] == ["#late"]


async def test_labeled_response(nursery: trio.Nursery) -> None:
    """A labelled request's answer carries the label: one line, a batch, or ACK."""
    server = await server_for(nursery)
    irc = await irc_join(nursery, server, "lia", *HISTORY_CAPS, "labeled-response")
    await irc.send("@label=a1 PING hello")
    assert (await irc.line()).rstrip("\r") == f"@label=a1 :{S} PONG {S} hello"
    await irc.send("@label=a2 JOIN #lab")
    start = (await irc.line()).rstrip("\r")
    assert start.startswith("@label=a2 ")
    assert "BATCH +" in start
    assert "labeled-response" in start
    ref = start.split("BATCH +", 1)[1].split()[0]
    rest = [(await irc.line()).rstrip("\r") for _ in range(4)]
    assert all(tags_of(text)["batch"] == ref for text in rest[:3]), rest
    assert [verb_of(text) for text in rest] == ["JOIN", "353", "366", "BATCH"]
    await irc.send("@label=a3 PRIVMSG #lab :hi")  # echo-message: the echo is the answer
    said = (await irc.line()).rstrip("\r")
    assert tags_of(said)["label"] == "a3"
    assert said.endswith("PRIVMSG #lab :hi")
    await trio.testing.wait_all_tasks_blocked()
    await irc.send("@label=a4 CHATHISTORY LATEST #lab * 5")
    start, inner = await batch(irc)
    assert tags_of(start)["label"] == "a4"
    assert len(inner) == 1
    await irc.send("@label=a5 NOTICE nobody-here :x")  # NOTICE is never answered
    assert (await irc.line()).rstrip("\r") == f"@label=a5 :{S} ACK"
    plain = await irc_join(nursery, server, "noa")  # without the cap: no labels
    await plain.send("@label=b1 PING x")
    assert (await plain.line()).rstrip("\r") == f":{S} PONG {S} x"


async def join_and_read(peer: Peer, room: str) -> list[str]:
    """JOIN ``room``; what comes up to NAMES' end and everything after it, once quiet."""
    await peer.send(f"JOIN {room}")
    await lines_until(peer, "366")
    got: list[str] = []
    with trio.move_on_after(0.2):
        while True:
            got.append((await peer.line()).rstrip("\r"))
    return got


async def test_join_playback_for_clients_without_chathistory(nursery: trio.Nursery) -> None:
    server = await server_for(nursery)
    plain = await join(nursery, server, "pat")
    await plain.send("/join #dev")
    for text in ("one", "two", "/me three"):
        await plain.send(text)
    await trio.testing.wait_all_tasks_blocked()
    bare = await irc_join(nursery, server, "ii")
    got = await join_and_read(bare, "#dev")
    assert got[0] == f":{S} NOTICE #dev :last 3 messages of #dev:"
    assert got[-1] == f":{S} NOTICE #dev :end of history of #dev"
    lines = got[1:-1]
    assert [text.split(" :", 1)[0] for text in lines] == [f":pat!pat@{S} PRIVMSG #dev"] * 3
    bodies = [text.split(" :", 1)[1] for text in lines]
    assert all(body.startswith("[") and body[6:8] == "] " for body in bodies[:2]), bodies
    assert [bodies[0][8:], bodies[1][8:]] == ["one", "two"]
    assert bodies[2].startswith("\x01ACTION [")
    assert bodies[2].endswith("] three\x01")
    # With server-time: the time is the tag, the text is as it was said.
    stamped = await irc_join(nursery, server, "irssi", "server-time")
    got = await join_and_read(stamped, "#dev")
    bodies = [text.split(" :", 2)[2] for text in got[1:-1]]
    assert bodies == ["one", "two", "\x01ACTION three\x01"]
    assert all("time" in tags_of(text) for text in got[1:-1])
    # With draft/chathistory: nothing (the client asks).
    asking = await irc_join(nursery, server, "gamja", *HISTORY_CAPS)
    assert await join_and_read(asking, "#dev") == []


async def test_join_playback_follows_history_setting(nursery: trio.Nursery) -> None:
    server = await open_test_server(nursery, irc_server_name=S, history=1)
    plain = await join(nursery, server, "pat")
    await plain.send("/join #dev")
    for text in ("one", "two"):
        await plain.send(text)
    await trio.testing.wait_all_tasks_blocked()
    bare = await irc_join(nursery, server, "ii")
    got = await join_and_read(bare, "#dev")
    assert got[0] == f":{S} NOTICE #dev :last message of #dev:"
    assert len(got) == 3
    assert got[1].endswith("] two")


# -- reads, against both stores ------------------------------------------------------------


def stored(ids: range, room: str = "#r") -> list[StoredMessage]:
    return [StoredMessage(room, i, 1000.0 + i / 100 + 0.0004, "say", "x", f"m{i}") for i in ids]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[MemoryStore | SQLiteStore]:
    chosen = MemoryStore() if request.param == "memory" else SQLiteStore.open(":memory:")
    chosen.commit(Batch(stored(range(31, 61))))  # 1-30 were deleted by retention
    yield chosen
    chosen.close()


def ask(*params: str) -> Chathistory:
    asked = plan(S, "me", params, joined=("#r",), last_id={"#r": 60}, caps=frozenset())
    assert isinstance(asked, Chathistory), asked
    return asked


def texts(rows: Sequence[StoredMessage | StoredPrivate]) -> list[str]:
    return [row.text for row in rows]


def test_reads_above_a_retention_hole(store: MemoryStore | SQLiteStore) -> None:
    """AFTER a deleted id starts at the oldest kept line; timestamps find their ids."""
    assert texts(ask("AFTER", "#r", "msgid=r-5", "3").read(store)) == ["m31", "m32", "m33"]
    assert texts(ask("BEFORE", "#r", "msgid=r-33", "5").read(store)) == ["m31", "m32"]
    assert texts(ask("LATEST", "#r", "*", "2").read(store)) == ["m59", "m60"]
    at_40 = "timestamp=1970-01-01T00:16:40.400Z"  # 1000.40 s: line 40
    assert texts(ask("AFTER", "#r", at_40, "2").read(store)) == ["m41", "m42"]
    assert texts(ask("BEFORE", "#r", at_40, "2").read(store)) == ["m38", "m39"]
    assert texts(ask("AROUND", "#r", at_40, "3").read(store)) == ["m39", "m40", "m41"]
    early = "timestamp=1970-01-01T00:00:00.000Z"
    assert texts(ask("BETWEEN", "#r", early, at_40, "3").read(store)) == ["m31", "m32", "m33"]
    assert texts(ask("BETWEEN", "#r", at_40, early, "3").read(store)) == ["m37", "m38", "m39"]
    assert ask("LATEST", "#r", "*", "0").limit == CHATHISTORY_LIMIT  # 0: the server's most


def test_refs() -> None:
    assert parse_ref("msgid=dev-ops-12", "#dev-ops") == Ref(msgid=12)
    assert parse_ref("msgid=dev-12", "#DEV") == Ref(msgid=12)
    assert parse_ref("msgid=ops-12", "#dev") is None
    assert parse_ref("timestamp=2026-05-01T12:00:00.250Z", "#dev") == Ref(ms=1777636800250)
    assert parse_ref("timestamp=2026-13-01T12:00:00Z", "#dev") is None
    assert millis(1777636800.2509) == 1777636800250  # as the time tag shows it: truncated


async def logged_in(nursery: trio.Nursery, server: ChatServer, nick: str) -> Peer:
    """An IRC member with the history caps, logged in to its account with IDENTIFY."""
    peer = await irc_join(nursery, server, f"{nick}_", *HISTORY_CAPS)  # the nick is taken
    await peer.send(f"PRIVMSG NickServ :IDENTIFY {nick} correct-horse")
    await lines_until(peer, "900")
    await trio.testing.wait_all_tasks_blocked()
    return peer


async def private_talk(nursery: trio.Nursery) -> tuple[ChatServer, dict[str, Peer], list[str]]:
    """ada and bob (logged in) exchange 8 lines, with a line to cy between each (holes in
    the ids of their conversation); ada's own copies of theirs, as history must give them."""
    server = await server_for(nursery)
    for name in ("ada", "bob", "cy"):
        await register(nursery, server, name, "correct-horse")
    peers = {name: await logged_in(nursery, server, name) for name in ("ada", "bob", "cy")}
    for peer in peers.values():  # past the others' renames
        await peer.send("PING sync")
        await lines_until(peer, "PONG")
    ada, bob, cy = peers["ada"], peers["bob"], peers["cy"]
    seen: list[str] = []
    for i in range(8):
        sender, to = (ada, "bob") if i % 2 == 0 else (bob, "ada")
        await sender.send(f"PRIVMSG {to} :line {i}")
        seen.append((await ada.line()).rstrip("\r"))  # the echo, or the delivery
        await bob.line()  # bob's copy (delivery or echo): not needed
        await ada.send(f"PRIVMSG cy :aside {i}")
        await ada.line()
        await cy.line()
        await trio.sleep(0.003)  # distinct milliseconds for the timestamp refs
    await trio.testing.wait_all_tasks_blocked()
    return server, peers, seen


@pytest.mark.parametrize("kind", ["msgid", "timestamp"])
async def test_private_history_by_nick(nursery: trio.Nursery, kind: str) -> None:
    """A nick target reads the asker's conversation with it (issue 18), every subcommand."""
    _server, peers, seen = await private_talk(nursery)
    ada = peers["ada"]
    assert tags_of(seen[0])["msgid"].startswith("@-")

    async def ask(request: str) -> list[str]:
        await ada.send(request)
        start, inner = await batch(ada)
        assert start.endswith(f"chathistory {request.split()[2]}")
        return [unbatched(line) for line in inner]

    assert await ask("CHATHISTORY LATEST bob * 50") == seen
    assert await ask("CHATHISTORY LATEST BOB * 2") == seen[-2:]
    assert await ask(f"CHATHISTORY LATEST bob {ref(seen[4], kind)} 50") == seen[5:]
    assert await ask(f"CHATHISTORY BEFORE bob {ref(seen[6], kind)} 20") == seen[:6]
    assert await ask(f"CHATHISTORY BEFORE bob {ref(seen[6], kind)} 2") == seen[4:6]
    assert await ask(f"CHATHISTORY AFTER bob {ref(seen[3], kind)} 3") == seen[4:7]
    first, last = ref(seen[0], kind), ref(seen[-1], kind)
    assert await ask(f"CHATHISTORY BETWEEN bob {first} {last} 20") == seen[1:-1]
    assert await ask(f"CHATHISTORY BETWEEN bob {last} {first} 3") == seen[-4:-1]
    assert await ask(f"CHATHISTORY AROUND bob {ref(seen[5], kind)} 3") == seen[4:7]


async def test_private_history_is_only_the_askers_own(nursery: trio.Nursery) -> None:
    """cy reads only its own lines with ada; a member not logged in reads nothing, and
    TARGETS lists the asker's conversations with the time of their latest line."""
    server, peers, seen = await private_talk(nursery)
    cy = peers["cy"]
    await cy.send("CHATHISTORY LATEST ada * 50")
    assert [line.rsplit(" :", 1)[1] for line in (await batch(cy))[1]] == [
        f"aside {i}" for i in range(8)
    ]
    await cy.send("CHATHISTORY LATEST bob * 50")
    assert (await batch(cy))[1] == []
    guest = await irc_join(nursery, server, "gus", *HISTORY_CAPS)
    await guest.send("CHATHISTORY LATEST ada * 50")
    assert (await batch(guest))[1] == []
    everything = "timestamp=2020-01-01T00:00:00.000Z timestamp=2262-01-01T00:00:00.000Z"
    await guest.send(f"CHATHISTORY TARGETS {everything} 10")
    assert (await batch(guest))[1] == []
    ada = peers["ada"]
    await ada.send(f"CHATHISTORY TARGETS {everything} 10")
    rows = [line.split()[-2:] for line in (await batch(ada))[1]]
    assert [name for name, _ in rows] == ["bob", "cy"]
    assert rows[0][1] == tags_of(seen[-1])["time"]


def test_private_range_reads_one_conversation(store: MemoryStore | SQLiteStore) -> None:
    """The oldest or newest lines of one pair inside an id range, whatever lies between."""
    lines = [
        StoredPrivate(*(("a", "b") if i % 2 else ("a", "c")), i, 1000.0 + i, "x", "y", f"p{i}")
        for i in range(1, 11)
    ]
    store.commit(Batch(private=lines))
    assert texts(store.private_range("b", "a", 1, 9, 2, oldest=True)) == ["p3", "p5"]
    assert texts(store.private_range("a", "b", 1, 9, 2, oldest=False)) == ["p5", "p7"]
    assert texts(store.private_range("a", "b", 0, 99, 10, oldest=False)) == [
        f"p{i}" for i in (1, 3, 5, 7, 9)
    ]
    assert sorted(texts(store.private_peers("a"))) == ["p10", "p9"]
