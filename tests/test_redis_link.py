"""The node's Redis client (hiredis over a trio stream) against a real redis-server.

:mod:`triochat.bus.resp` (one connection: pipelining, error replies, a cut exchange)
and :class:`triochat.bus.redis_link.RedisLink` (AUTH and SELECT from the URL, scripts
that Redis forgot, reconnecting after Redis restarts, XREAD on its own connection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
import trio

from tests.redisproc import RedisServer, free_port
from tests.test_redis_secrets import SECRET, PasswordRedis
from triochat.bus import ClusterError
from triochat.bus.redis_link import RedisLink
from triochat.bus.resp import Address, Connection, LinkClosed, ReplyError, parse_url

WAIT: Final = 10.0  # real seconds for anything against the local redis-server


def address(redis: RedisServer) -> Address:
    return Address("127.0.0.1", redis.port)


def test_resp_parse_url_reads_password_user_and_database() -> None:
    """Every place a URL may hold the password and the database is read."""
    assert parse_url("redis://h") == Address("h")
    assert parse_url("redis://:pw@h:7000/3") == Address("h", 7000, 3, None, "pw")
    assert parse_url("rediss://bob:p%40ss@h/2") == Address("h", 6379, 2, "bob", "p@ss", True)
    assert parse_url("redis://h?password=pw&db=5") == Address("h", 6379, 5, None, "pw")
    for bad, why in (
        ("http://h", "expected"),
        ("redis://h:port/0", "port"),
        ("redis://h/x", "number"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_url(bad)


async def test_resp_pipeline_replies_in_order_with_errors_in_place(
    redis_server: RedisServer,
) -> None:
    """Several commands in one write come back in order; an error reply is returned in
    its place, and the connection stays in step for the next call."""
    with trio.fail_after(WAIT):
        conn = await Connection.open(address(redis_server))
        try:
            replies = await conn.pipeline(
                [("SET", "k", "é"), ("GET", "k"), ("INCR", "k"), ("GET", "none"), ("PING",)]
            )
            assert replies[:2] == ["OK", "é"]
            assert isinstance(replies[2], ReplyError)
            assert replies[3:] == [None, "PONG"]
            with pytest.raises(ReplyError, match="wrong number"):
                await conn.call("GET")
            assert await conn.call("ECHO", "still in step") == "still in step"
            big = "x" * 300_000  # more than one receive_some
            await conn.call("SET", "big", big)
            assert await conn.call("GET", "big") == big
            assert conn.calls == 5  # one exchange per call or pipeline
        finally:
            await conn.aclose()


async def test_resp_an_exchange_cut_short_closes_the_connection(
    redis_server: RedisServer,
) -> None:
    """A call cancelled while waiting for its reply leaves the connection closed, so a
    late reply can never be taken for the answer to the next question."""
    with trio.fail_after(WAIT):
        conn = await Connection.open(address(redis_server))
        with trio.move_on_after(0.2) as scope:
            await conn.call("BLPOP", "nothing", 5)
        assert scope.cancelled_caught
        assert not conn.usable
        with pytest.raises(LinkClosed):
            await conn.call("PING")


async def test_resp_redis_going_away_is_link_closed(redis_server: RedisServer) -> None:
    """Redis closing the connection mid-wait is an error the bus counts as "away"."""
    with trio.fail_after(WAIT):
        conn = await Connection.open(address(redis_server))
        killer = await Connection.open(address(redis_server))
        async with trio.open_nursery() as nursery:

            async def kill_others() -> None:
                await trio.sleep(0.1)
                await killer.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

            nursery.start_soon(kill_others)
            with pytest.raises((LinkClosed, OSError, trio.BrokenResourceError)):
                await conn.call("BLPOP", "nothing", 5)
        assert not conn.usable
        await killer.aclose()


async def test_redis_link_logs_in_and_selects_the_database(tmp_path: Path) -> None:
    """AUTH with the URL's password and SELECT of its database; a wrong password is a
    clear ClusterError from check() that does not show the password."""
    redis = await PasswordRedis.start(tmp_path / "redis")
    try:
        with trio.fail_after(WAIT):
            link = RedisLink(f"redis://:{SECRET}@127.0.0.1:{redis.port}/3")
            await link.check()
            async with link:
                await link.set_nx("where", "db3")
                assert await link.get("where") == "db3"
            plain = await Connection.open(Address("127.0.0.1", redis.port, password=SECRET))
            assert await plain.call("GET", "where") is None  # not in database 0
            assert await plain.call("SELECT", 3) == "OK"
            assert await plain.call("GET", "where") == "db3"
            await plain.aclose()
            wrong = RedisLink(f"redis://:wrong-{SECRET}x@127.0.0.1:{redis.port}/0")
            with pytest.raises(ClusterError) as caught:
                await wrong.check()
            assert SECRET not in str(caught.value)
            assert "cannot reach Redis at redis://:***@" in str(caught.value)
    finally:
        await redis.stop()


async def test_redis_link_scripts_survive_a_redis_that_forgot_them(
    redis_server: RedisServer,
) -> None:
    """EVALSHA of a script Redis lost (a restart, SCRIPT FLUSH) falls back to EVAL once,
    alone and in a pipelined batch of scripts."""
    link = RedisLink(redis_server.url)
    with trio.fail_after(WAIT):
        async with link:
            link.register("add", "return tonumber(ARGV[1]) + tonumber(ARGV[2])")
            link.register("echo", "return ARGV[1]")
            assert await link.script("add", [1, 2]) == 3
            await link.call("SCRIPT", "FLUSH")
            assert await link.script("add", [2, 3]) == 5
            await link.call("SCRIPT", "FLUSH")
            assert await link.scripts([("add", [1, 1]), ("echo", ["hi"])]) == [2, "hi"]
            link.register("bad", "return redis.call('NOSUCHCOMMAND')")
            with pytest.raises(link.errors):
                await link.script("bad", [])


async def test_redis_link_reconnects_after_redis_restarts(redis_server: RedisServer) -> None:
    """A call after Redis restarted fails once (the bus marks the link down), and the
    next call opens a new connection; XREAD reads on its own connection."""
    link = RedisLink(redis_server.url)
    with trio.fail_after(WAIT):
        async with link:
            await link.ping()
            await link.call("XADD", "s", "1-0", "e", "one")
            assert await link.xread({"s": "0-0"}, 10, 100) == {"s": [[b"1-0", [b"e", b"one"]]]}
            await redis_server.restart(keep_data=False)
            with pytest.raises(link.errors):
                await link.ping()
            await link.ping()  # a new connection
            with pytest.raises(link.errors):
                await link.xread({"s": "0-0"}, 10, 100)
            assert await link.xread({"s": "0-0"}, 10, 50) == {}  # nothing kept, timed out
            await link.call("XADD", "s", "2-0", "e", "two", "x", "y")
            assert await link.xread({"s": "1-0"}, 10, 100) == {
                "s": [[b"2-0", [b"e", b"two", b"x", b"y"]]]
            }


async def test_redis_link_check_fails_clearly_when_nothing_listens() -> None:
    """No Redis at the address: one ClusterError with the reason."""
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ClusterError, match=r"cannot reach Redis at redis://127\.0\.0\.1:"):
        await link.check()


def test_redis_link_bad_url_is_a_cluster_error() -> None:
    """A URL the client cannot use is refused when the link is made, password masked."""
    with pytest.raises(ClusterError) as caught:
        RedisLink(f"redis://:{SECRET}@h/notadb")
    assert SECRET not in str(caught.value)
