"""Password hashing and the account and moderation commands' parsing (no I/O)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from triochat.core import passwords
from triochat.core.admin import (
    Ban,
    Bans,
    ChangePassword,
    Deop,
    Drop,
    Kick,
    LockTopic,
    Login,
    Mute,
    Op,
    Pass,
    Register,
    Unban,
    Unmute,
)
from triochat.core.commands import Hello, Invalid, parse_json, parse_plain
from triochat.core.durations import format_duration, format_remaining, parse_duration
from triochat.core.passwords import (
    DEFAULT_COST,
    Cost,
    Job,
    JobKind,
    check,
    hash_password,
    password_problem,
    verify_password,
)

CHEAP = Cost(n=2**4, r=8, p=1)


def test_passwords_hash_is_salted_and_verifies() -> None:
    """Two hashes of one password differ (salt); each verifies it and nothing else."""
    first = hash_password("correct-horse", CHEAP)
    second = hash_password("correct-horse", CHEAP)
    assert first != second
    assert first.startswith("scrypt$16$8$1$")
    assert verify_password("correct-horse", first)
    assert verify_password("correct-horse", second)
    assert not verify_password("correct-horsE", first)
    assert "correct-horse" not in first


def test_passwords_default_cost_is_memory_hard() -> None:
    """The default is scrypt with at least 32 MiB per hash (128 * r * n bytes)."""
    assert 128 * DEFAULT_COST.r * DEFAULT_COST.n >= 32 << 20
    stored = hash_password("correct-horse")
    assert stored.startswith(f"scrypt${DEFAULT_COST.n}$")
    assert verify_password("correct-horse", stored)


def test_passwords_compare_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check uses hmac.compare_digest, never ==."""
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_password("correct-horse", hash_password("correct-horse", CHEAP))
    assert len(calls) == 1


@pytest.mark.parametrize(
    "stored", ["", "plain", "md5$x$y", "scrypt$16$8$1$!!$!!", "scrypt$x$8$1$AA$AA", "a$b"]
)
def test_passwords_damaged_hash_never_matches(stored: str) -> None:
    """A malformed stored value is a mismatch, not an exception."""
    assert not verify_password("anything-at-all", stored)


def test_passwords_rules() -> None:
    """8 to 256 characters, no spaces."""
    assert password_problem("correct-horse") is None
    assert password_problem("short") == "a password needs at least 8 characters"
    assert password_problem("sesame", min_chars=6) is None
    assert password_problem("fives", min_chars=6) == "a password needs at least 6 characters"
    assert password_problem("x" * 257) == "a password is at most 256 characters"
    assert password_problem("has a space") == "a password cannot contain spaces"


def test_passwords_check_does_each_kind_of_job() -> None:
    """register hashes; login verifies (a missing account fails); change needs the old one."""
    job = Job(JobKind.REGISTER, 1, "allce", "alice", "h", 0, "correct-horse")
    registered = check(job, None, CHEAP)
    assert registered.ok
    assert verify_password("correct-horse", registered.new_hash)
    login = Job(JobKind.LOGIN, 1, "allce", "alice", "h", 1, "correct-horse")
    assert check(login, registered.new_hash, CHEAP).ok
    assert not check(login, None, CHEAP).ok
    wrong = Job(JobKind.CHANGE, 1, "allce", "alice", "h", 1, "nope-nope", "battery-staple")
    assert not check(wrong, registered.new_hash, CHEAP).ok
    right = Job(JobKind.CHANGE, 1, "allce", "alice", "h", 1, "correct-horse", "battery-staple")
    changed = check(right, registered.new_hash, CHEAP)
    assert changed.ok
    assert verify_password("battery-staple", changed.new_hash)


def test_passwords_scrypt_is_what_runs() -> None:
    """The stored digest is scrypt's, so any scrypt implementation can check it."""
    stored = hash_password("correct-horse", CHEAP)
    _, n, r, p, salt, digest = stored.split("$")
    expected = hashlib.scrypt(
        b"correct-horse",
        salt=passwords._unb64(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=32,
    )
    assert passwords._unb64(digest) == expected


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/register correct-horse", Register("correct-horse")),
        ("/login alice correct-horse", Login("alice", "correct-horse")),
        ("/password old-old-old new-new-new", ChangePassword("old-old-old", "new-new-new")),
        ("/pass s3cret with spaces", Pass("s3cret with spaces")),
        ("/op carol", Op("carol")),
        ("/deop carol", Deop("carol")),
        ("/kick zed", Kick("zed")),
        ("/kick zed flooding the room", Kick("zed", "flooding the room")),
        ("/ban zed", Ban("zed")),
        ("/ban zed 10m", Ban("zed", 600.0)),
        ("/ban zed 2h spam", Ban("zed", 7200.0, "spam")),
        ("/ban 10.0.0.0/8 7d botnet", Ban("10.0.0.0/8", 604800.0, "botnet")),
        ("/ban zed spamming again", Ban("zed", None, "spamming again")),
        ("/unban zed", Unban("zed")),
        ("/bans", Bans()),
        ("/mute zed", Mute("zed")),
        ("/mute zed 30s", Mute("zed", 30.0)),
        ("/unmute zed", Unmute("zed")),
        ("/drop zed", Drop("zed")),
        ("/locktopic", LockTopic(True)),
        ("/LockTopic Dev", LockTopic(True, "#dev")),
        ("/unlocktopic #dev", LockTopic(False, "#dev")),
    ],
)
def test_commands_admin_plain(line: str, command: object) -> None:
    """Each account and moderation command in plain mode."""
    assert parse_plain(line) == command


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/login alice", "usage: /login NAME PASSWORD"),
        ("/password onlyone", "usage: /password OLD NEW"),
        ("/op", "usage: /op NAME"),
        ("/kick", "usage: /kick NAME [REASON]"),
        ("/ban", "usage: /ban NAME|ADDRESS[/PREFIX] [DURATION] [REASON]"),
        ("/mute zed forever", "a duration is a number and a unit: 30s, 10m, 2h, 7d or 4w"),
        ("/mute zed 10m extra", "usage: /mute NAME [DURATION]"),
        ("/pass", "usage: /pass SERVER-PASSWORD"),
    ],
)
def test_commands_admin_plain_usage(line: str, error: str) -> None:
    """A malformed account or moderation command gets its usage."""
    command = parse_plain(line)
    assert isinstance(command, Invalid)
    assert command.text == error


@pytest.mark.parametrize(
    ("obj", "command"),
    [
        ('{"type": "register", "password": "correct-horse"}', Register("correct-horse")),
        ('{"type": "login", "name": "alice", "password": "pw-pw-pw"}', Login("alice", "pw-pw-pw")),
        ('{"type": "password", "old": "a", "new": "b"}', ChangePassword("a", "b")),
        ('{"type": "kick", "name": "zed", "reason": "spam"}', Kick("zed", "spam")),
        ('{"type": "ban", "target": "::1", "duration": "1h"}', Ban("::1", 3600.0)),
        ('{"type": "unban", "target": "zed"}', Unban("zed")),
        ('{"type": "mute", "name": "zed", "duration": "10m"}', Mute("zed", 600.0)),
        ('{"type": "topic-lock", "room": "dev"}', LockTopic(True, "#dev")),
        ('{"type": "topic-lock", "locked": false}', LockTopic(False)),
        ('{"type": "bans"}', Bans()),
    ],
)
def test_commands_admin_json(obj: str, command: object) -> None:
    """Each account and moderation request in JSON mode."""
    assert parse_json(obj) == command


def test_commands_hello_carries_passwords() -> None:
    """A hello may carry the account's password and the server's."""
    hello = parse_json(
        '{"type": "hello", "name": "alice", "password": "pw-pw-pw", "server_password": "s"}'
    )
    assert hello == Hello("alice", password="pw-pw-pw", server_password="s")
    bad = parse_json('{"type": "hello", "name": "alice", "password": 5}')
    assert bad == Invalid("bad-request", "field 'password' must be a string")


def test_durations_parse_and_format() -> None:
    """10m, 2h, 7d are seconds; shown back in their largest whole unit."""
    assert [parse_duration(t) for t in ("30s", "10M", "2h", "7d", "1w")] == [
        30.0,
        600.0,
        7200.0,
        604800.0,
        604800.0,
    ]
    assert [parse_duration(t) for t in ("", "10", "m", "0s", "-1h", "1y", "99999w")] == [None] * 7
    assert [format_duration(s) for s in (30, 600, 5400, 86400, 604800)] == [
        "30s",
        "10m",
        "90m",
        "1d",
        "7d",
    ]
    assert [format_remaining(s) for s in (0.2, 59, 61, 3599, 3601, 90000)] == [
        "1s",
        "59s",
        "2m",
        "60m",
        "2h",
        "2d",
    ]
