"""Passwords: salted scrypt hashes, compared in constant time. No I/O, no trio.

Rules of this module:

* **Slow on purpose, so never in the event loop.** One hash takes about 0.1 s of one
  core and 32 MiB (:data:`DEFAULT_COST`); the hub runs :func:`check` in a worker
  thread and hands the :class:`Outcome` back to the chat state as a message.
* **Only hashes are kept.** A hash is ``scrypt$N$r$p$SALT$HASH`` (base64 salt and
  hash), so it carries its own cost: raising the cost later leaves old hashes valid.
* **Nothing here logs, and no password is in a ``repr``** (``field(repr=False)``), so a
  stray ``log.debug("%r", job)`` cannot leak one.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Final, assert_never

from triochat.core.hygiene import sanitise

__all__ = [
    "DEFAULT_COST",
    "INVISIBLE_PASSWORD",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "Cost",
    "Job",
    "JobKind",
    "Outcome",
    "check",
    "hash_password",
    "password_problem",
    "secret_problem",
    "verify_password",
]

MIN_PASSWORD_CHARS: Final = 8  # NIST SP 800-63B's minimum for a secret people choose
MAX_PASSWORD_CHARS: Final = 256  # long passphrases fit; bounds what one attempt feeds scrypt
SALT_BYTES: Final = 16  # 128 random bits: no two hashes ever share a salt
HASH_BYTES: Final = 32  # 256 bits of derived key
SCHEME: Final = "scrypt"
INVISIBLE_PASSWORD: Final = (
    "a password cannot contain invisible or control characters (zero width spaces, "
    "direction marks, escape sequences): they cannot be seen or typed again; type it "
    "without them"
)


@dataclass(frozen=True, slots=True)
class Cost:
    """scrypt's parameters: memory and time grow with ``n * r``, time with ``p``."""

    n: int
    r: int
    p: int

    @property
    def maxmem(self) -> int:
        """The memory scrypt needs (128 * r * n bytes), with room to spare."""
        return 2 * 128 * self.r * self.n + (1 << 20)


# N=2**15, r=8, p=1: 32 MiB and ~110 ms on one core of the 2-core test machine (N=2**14
# is ~55 ms, 2**16 ~220 ms). Each guess costs an attacker as much; the server hashes one
# password at a time (hub.HASH_THREADS), so a login storm cannot eat all the memory.
DEFAULT_COST: Final = Cost(n=2**15, r=8, p=1)


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be set as a password, or None if it can."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"a password needs at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"a password is at most {MAX_PASSWORD_CHARS} characters"
    if any(char.isspace() for char in password):
        return "a password cannot contain spaces"
    return None


def secret_problem(raw: str) -> str | None:
    """Why ``raw``, a password as received, cannot be used as it is (None: it can).

    Every other field has its invisible and control characters stripped
    (:func:`~triochat.core.hygiene.sanitise`); a password must not be changed behind
    its owner's back, so one containing any is refused instead.
    """
    return None if sanitise(raw) == raw else INVISIBLE_PASSWORD


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, cost: Cost) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.maxmem,
        dklen=HASH_BYTES,
    )


def hash_password(password: str, cost: Cost | None = None) -> str:
    """Return a new salted hash of ``password`` (slow: call it from a worker thread).

    Args:
        password: The password, as typed (already sanitised like any other field).
        cost: scrypt's parameters; None means :data:`DEFAULT_COST` as it is at call
            time (tests lower it).
    """
    cost = cost or DEFAULT_COST
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, salt, cost)
    return f"{SCHEME}${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches the ``stored`` hash (compared in constant time).

    A malformed ``stored`` value never matches.
    """
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        cost = Cost(int(n), int(r), int(p))
        expected = _unb64(digest)
        actual = _derive(password, _unb64(salt), cost)
    except ValueError:  # a damaged hash (binascii.Error is a ValueError too)
        return False
    return hmac.compare_digest(actual, expected)


class JobKind(enum.Enum):
    """What a password job is for."""

    REGISTER = "register"  # hash a new account's password
    LOGIN = "login"  # check a password against the stored hash
    CHANGE = "change"  # check the old password, then hash the new one


@dataclass(frozen=True, slots=True)
class Job:
    """Password work the chat state asks the hub to do in a worker thread.

    Attributes:
        kind: What to do.
        conn_id: The connection that asked (it may have left by the time it is done).
        key: The account's name key.
        name: The name the member asked for (login) or holds (register, change).
        address: The client's address, for the failed-login throttle and the log.
        generation: The account's version when the job was made; a result for an
            account changed meanwhile is discarded.
        password: The password given (register, login) or the old one (change).
        new_password: The new password (change only).
        urgent: Checked before every job that is not: an owner's (a change, or a login
            from an address that proved the account's password before), so it never
            waits behind an attacker's guesses.
    """

    kind: JobKind
    conn_id: int
    key: str
    name: str
    address: str
    generation: int
    password: str = field(repr=False)
    new_password: str = field(default="", repr=False)
    urgent: bool = False

    @property
    def needs_stored_hash(self) -> bool:
        """The worker must read the account's hash from the store first."""
        return self.kind is not JobKind.REGISTER


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a :class:`Job` found: whether the password was right, and any new hash."""

    ok: bool
    new_hash: str = field(default="", repr=False)
    failure: str = ""  # set when the check could not be made at all (the store failed)


def _nobody(cost: Cost) -> str:
    """A well-formed hash that no password matches in practice, at ``cost``.

    A login for an account that has just been dropped is checked against it, so that
    it takes as long as a real one.
    """
    zeros = bytes(max(SALT_BYTES, HASH_BYTES))
    return f"{SCHEME}${cost.n}${cost.r}${cost.p}${_b64(zeros[:SALT_BYTES])}${_b64(zeros)}"


def check(job: Job, stored_hash: str | None, cost: Cost | None = None) -> Outcome:
    """Do ``job``'s slow work (in a worker thread).

    Args:
        job: The job.
        stored_hash: The account's hash from the store (None: no such account).
        cost: scrypt's parameters for new hashes (None: :data:`DEFAULT_COST`).
    """
    match job.kind:
        case JobKind.REGISTER:
            return Outcome(True, hash_password(job.password, cost))
        case JobKind.LOGIN:
            if stored_hash is None:
                verify_password(job.password, _nobody(cost or DEFAULT_COST))
                return Outcome(False)
            return Outcome(verify_password(job.password, stored_hash))
        case JobKind.CHANGE:
            if stored_hash is None or not verify_password(job.password, stored_hash):
                return Outcome(False)
            return Outcome(True, hash_password(job.new_password, cost))
        case _:
            assert_never(job.kind)
