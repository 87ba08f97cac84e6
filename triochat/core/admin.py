"""Account and moderation requests, and how both wire modes spell them. No I/O.

:func:`triochat.core.commands.parse_plain` and :func:`~triochat.core.commands.parse_json`
hand the verbs named in :data:`PLAIN_VERBS` and :data:`JSON_TYPES` to the parsers here,
which return a command or an ``(error code, text)`` pair (the caller makes it an
``Invalid``). Every field is sanitised by the caller or here; nothing is validated
against the server's state (whether a name is registered, who is an operator): that
is the chat state's business.

Passwords are kept out of every ``repr`` (``field(repr=False)``), so logging a command
can never log a password.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from triochat.core.durations import parse_duration
from triochat.core.hygiene import sanitise
from triochat.core.passwords import secret_problem

__all__ = [
    "JSON_TYPES",
    "PLAIN_VERBS",
    "AccountCommand",
    "AdminCommand",
    "Ban",
    "Bans",
    "ChangePassword",
    "Deop",
    "Drop",
    "DropRoom",
    "Kick",
    "LockTopic",
    "Login",
    "ModCommand",
    "Mute",
    "Op",
    "Pass",
    "Register",
    "Unban",
    "Unmute",
    "parse_admin_json",
    "parse_admin_plain",
]


@dataclass(frozen=True, slots=True)
class Register:
    """Register the member's current name with ``password``."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Login:
    """Prove the password of the account ``name`` and take that name."""

    name: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChangePassword:
    """Change the logged-in account's password from ``old`` to ``new``."""

    old: str = field(repr=False)
    new: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Pass:
    """The server password (``--password-file``), sent before registering."""

    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Op:
    """Operators: make the account ``name`` an operator."""

    name: str


@dataclass(frozen=True, slots=True)
class Deop:
    """Operators: the account ``name`` is no longer an operator."""

    name: str


@dataclass(frozen=True, slots=True)
class Kick:
    """Operators: disconnect ``name`` (it may come back)."""

    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ban:
    """Operators: ban a name or an address range, for ``duration`` seconds or until lifted."""

    target: str
    duration: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unban:
    """Operators: lift the ban on a name or an address range."""

    target: str


@dataclass(frozen=True, slots=True)
class Bans:
    """Operators: list the bans in force."""


@dataclass(frozen=True, slots=True)
class Mute:
    """Operators: ``name`` may read but not speak, for ``duration`` seconds or until lifted."""

    name: str
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Unmute:
    """Operators: ``name`` may speak again."""

    name: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Operators: delete the account ``name`` (the name is free again)."""

    name: str


@dataclass(frozen=True, slots=True)
class DropRoom:
    """Operators: move everyone out of ``room`` and delete it with its history.

    Parsed by the command table's own parsers (:mod:`triochat.core.commands.parsers`).
    """

    room: str


@dataclass(frozen=True, slots=True)
class LockTopic:
    """Operators: lock (or unlock) ``room``'s topic so only operators change it."""

    locked: bool
    room: str | None = None


AccountCommand = Register | Login | ChangePassword | Pass
ModCommand = Op | Deop | Kick | Ban | Unban | Bans | Mute | Unmute | Drop | DropRoom | LockTopic
AdminCommand = AccountCommand | ModCommand
Problem = tuple[str, str]  # (error code, text): the caller turns it into an Invalid

PLAIN_VERBS: Final = frozenset(
    {
        "register",
        "login",
        "password",
        "pass",
        "op",
        "deop",
        "kick",
        "ban",
        "unban",
        "bans",
        "mute",
        "unmute",
        "drop",
        "locktopic",
        "unlocktopic",
    }
)
JSON_TYPES: Final = (PLAIN_VERBS - {"locktopic", "unlocktopic"}) | {"topic-lock"}

_USAGE: Final = {
    "register": "/register PASSWORD",
    "login": "/login NAME PASSWORD",
    "password": "/password OLD NEW",
    "pass": "/pass SERVER-PASSWORD",
    "op": "/op NAME",
    "deop": "/deop NAME",
    "kick": "/kick NAME [REASON]",
    "ban": "/ban NAME|ADDRESS[/PREFIX] [DURATION] [REASON]",
    "unban": "/unban NAME|ADDRESS[/PREFIX]",
    "mute": "/mute NAME [DURATION]",
    "unmute": "/unmute NAME",
    "drop": "/drop NAME",
}
BAD_DURATION: Final = ("bad-request", "a duration is a number and a unit: 30s, 10m, 2h, 7d or 4w")


def _usage(verb: str) -> Problem:
    return "bad-request", f"usage: {_USAGE[verb]}"


def _words(text: str) -> list[str]:
    return text.split()


def _one_name(verb: str, rest: str, kind: Callable[[str], AdminCommand]) -> AdminCommand | Problem:
    words = _words(rest)
    return kind(words[0]) if len(words) == 1 else _usage(verb)


def parse_admin_plain(verb: str, rest: str, room: str | None = None) -> AdminCommand | Problem:
    """Parse ``/verb rest`` (``verb`` lower-case, in :data:`PLAIN_VERBS`; ``rest`` sanitised).

    ``room`` is the already-parsed room argument of ``/locktopic`` and ``/unlocktopic``.
    """
    words = _words(rest)
    match verb:
        case "register":
            return Register(words[0]) if len(words) == 1 else _usage(verb)
        case "login":
            return Login(words[0], words[1]) if len(words) == 2 else _usage(verb)
        case "password":
            return ChangePassword(words[0], words[1]) if len(words) == 2 else _usage(verb)
        case "pass":
            return Pass(rest) if rest else _usage(verb)
        case "op":
            return _one_name(verb, rest, Op)
        case "deop":
            return _one_name(verb, rest, Deop)
        case "unmute":
            return _one_name(verb, rest, Unmute)
        case "drop":
            return _one_name(verb, rest, Drop)
        case "unban":
            return _one_name(verb, rest, Unban)
        case "bans":
            return Bans()
        case "kick":
            if not words:
                return _usage(verb)
            return Kick(words[0], " ".join(words[1:]))
        case "ban":
            if not words:
                return _usage(verb)
            duration = parse_duration(words[1]) if len(words) > 1 else None
            reason = words[2:] if duration is not None else words[1:]
            return Ban(words[0], duration, " ".join(reason))
        case "mute":
            if not 1 <= len(words) <= 2:
                return _usage(verb)
            if len(words) == 1:
                return Mute(words[0])
            duration = parse_duration(words[1])
            return BAD_DURATION if duration is None else Mute(words[0], duration)
        case "locktopic" | "unlocktopic":
            return LockTopic(verb == "locktopic", room)
        case _:  # pragma: no cover - the caller only passes PLAIN_VERBS
            raise ValueError(f"not an account or moderation verb: {verb!r}")


def _text(obj: dict[str, object], key: str, *, required: bool = True) -> str | Problem:
    """A string field, sanitised and stripped (``""`` when optional and absent)."""
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        return "bad-request", f"field {key!r} must be a string"
    return sanitise(value).strip()


def _secret(obj: dict[str, object], key: str, code: str) -> str | Problem:
    """A password field, stripped but never sanitised: invisible characters are refused."""
    value = obj.get(key)
    if not isinstance(value, str):
        return "bad-request", f"field {key!r} must be a string"
    problem = secret_problem(value)
    return (code, problem) if problem is not None else value.strip()


def _name(obj: dict[str, object], kind: Callable[[str], AdminCommand]) -> AdminCommand | Problem:
    name = _text(obj, "name")
    return name if isinstance(name, tuple) else kind(name)


def _duration(obj: dict[str, object]) -> float | Problem | None:
    text = _text(obj, "duration", required=False)
    if isinstance(text, tuple):
        return text
    if not text:
        return None
    duration = parse_duration(text)
    return BAD_DURATION if duration is None else duration


def parse_admin_json(kind: str, obj: dict[str, object], room: str | None) -> AdminCommand | Problem:
    """Parse a JSON request whose ``type`` is in :data:`JSON_TYPES`.

    ``room`` is the request's already-parsed ``room`` field (None: the current room).
    """
    match kind:
        case "register":
            password = _secret(obj, "password", "weak-password")
            return password if isinstance(password, tuple) else Register(password)
        case "login":
            name = _text(obj, "name")
            password = _secret(obj, "password", "bad-password")
            if isinstance(name, tuple):
                return name
            return password if isinstance(password, tuple) else Login(name, password)
        case "password":
            old = _secret(obj, "old", "bad-password")
            new = _secret(obj, "new", "weak-password")
            if isinstance(old, tuple):
                return old
            return new if isinstance(new, tuple) else ChangePassword(old, new)
        case "pass":
            return "bad-request", "a JSON client gives the server password in its hello"
        case "op":
            return _name(obj, Op)
        case "deop":
            return _name(obj, Deop)
        case "unmute":
            return _name(obj, Unmute)
        case "drop":
            return _name(obj, Drop)
        case "bans":
            return Bans()
        case "kick":
            name = _text(obj, "name")
            reason = _text(obj, "reason", required=False)
            if isinstance(name, tuple):
                return name
            return reason if isinstance(reason, tuple) else Kick(name, reason)
        case "ban" | "unban":
            target = _text(obj, "target")
            if isinstance(target, tuple):
                return target
            if kind == "unban":
                return Unban(target)
            duration = _duration(obj)
            reason = _text(obj, "reason", required=False)
            if isinstance(duration, tuple):
                return duration
            return reason if isinstance(reason, tuple) else Ban(target, duration, reason)
        case "mute":
            name = _text(obj, "name")
            duration = _duration(obj)
            if isinstance(name, tuple):
                return name
            return duration if isinstance(duration, tuple) else Mute(name, duration)
        case "topic-lock":
            locked = obj.get("locked", True)
            if not isinstance(locked, bool):
                return "bad-request", "field 'locked' must be true or false"
            return LockTopic(locked, room)
        case _:  # pragma: no cover - the caller only passes JSON_TYPES
            raise ValueError(f"not an account or moderation request: {kind!r}")
