"""Accounts in the chat state: registering, logging in, passwords, the server password.

Rules of this module:

* **The state never hashes.** A command that needs a password checked or hashed
  becomes a :class:`~triochat.core.passwords.Job` in :attr:`Accounts.jobs`; the hub
  runs it in a worker thread (reading the stored hash first, in the store's order) and
  hands the :class:`~triochat.core.passwords.Outcome` back through its inbound
  channel, so no room ever waits for scrypt. The account may have changed meanwhile:
  each job carries the account's generation, and a stale outcome is discarded.
* **Throttled per address.** A password check from an address that failed too often
  is refused before any hashing (:class:`~triochat.core.throttle.LoginThrottle`), and
  at most :data:`MAX_JOBS` checks (:data:`MAX_JOBS_PER_ADDRESS` per address) are in
  flight at once. Every failure is logged with the address; no password ever is.
* **Warned once.** A member who sends a password over a cleartext connection from
  another machine is told, once, that it crossed the network unencrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import TYPE_CHECKING, Final, assert_never

from triochat.core.admin import AccountCommand, ChangePassword, Login, Pass, Register
from triochat.core.events import AccountInfo, Notice
from triochat.core.names import name_key
from triochat.core.passwords import Job, JobKind, Outcome, password_problem
from triochat.core.records import AccountRecord, SaveAccount
from triochat.core.throttle import LoginThrottle

if TYPE_CHECKING:
    from triochat.core.access import Access
    from triochat.core.model import ChatPort, Member

__all__ = ["CLEARTEXT_WARNING", "MAX_JOBS", "MAX_JOBS_PER_ADDRESS", "Accounts", "Problem"]

log = logging.getLogger(__name__)

MAX_JOBS: Final = 32  # password checks queued for the hashing thread: ~3 s of work at 0.1 s each
MAX_JOBS_PER_ADDRESS: Final = 2  # one address cannot fill the queue with guesses
CLEARTEXT_WARNING: Final = (
    "your password crossed the network unencrypted on this connection; anyone on the "
    "way could read it. Connect over TLS if this server offers it"
)
GUEST_PREFIX: Final = "guest-"  # guest names are handed out; they cannot be registered

Problem = tuple[str, str]  # (error code, text)


def _digest(secret: str) -> bytes:
    """A fixed-length digest, so compare_digest does not leak the secret's length."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


class Accounts:
    """The account side of the chat state (see the module rules)."""

    def __init__(self, state: ChatPort, access: Access, server_password: str | None) -> None:
        self._state = state
        self.access = access
        self.throttle = LoginThrottle()
        self._server_digest = None if server_password is None else _digest(server_password)
        self.jobs: list[Job] = []  # for the hub: take them with take_jobs()
        self._in_flight: dict[str, int] = {}  # jobs per address, until their outcome is back
        self._registering: set[str] = set()  # keys with a registration being hashed

    # -- the gate and the throttle ---------------------------------------------------------

    def gate(self, address: str, given: str | None) -> Problem | None:
        """Check the server password (``--password-file``) of a new connection."""
        if self._server_digest is None:
            return None
        now = self._state.now()
        wait = self.throttle.wait(address, now)
        if wait:
            return _too_many(wait)
        if given is not None and hmac.compare_digest(_digest(given), self._server_digest):
            return None
        if given is None:
            return "server-password", "this server needs a password: send /pass PASSWORD first"
        self._failed(address, "the server password", None)
        return "server-password", "wrong server password"

    def start(
        self,
        kind: JobKind,
        conn_id: int,
        name: str,
        address: str,
        password: str,
        new_password: str = "",
    ) -> Problem | None:
        """Queue a password job for the hub, or say why not (throttled, too busy)."""
        wait = self.throttle.wait(address, self._state.now())
        if wait and kind is not JobKind.REGISTER:
            return _too_many(wait)
        busy = sum(self._in_flight.values())
        if busy >= MAX_JOBS or self._in_flight.get(address, 0) >= MAX_JOBS_PER_ADDRESS:
            return "server-busy", "the server is checking other passwords; try again in a moment"
        key = name_key(name)
        generation = self.access.generation(key)
        self.jobs.append(Job(kind, conn_id, key, name, address, generation, password, new_password))
        self._in_flight[address] = self._in_flight.get(address, 0) + 1
        return None

    def finished(self, job: Job, outcome: Outcome) -> Problem | None:
        """Book a job's outcome; a problem if it cannot count (stale, store failure, wrong)."""
        left = self._in_flight.get(job.address, 0) - 1
        if left > 0:
            self._in_flight[job.address] = left
        else:
            self._in_flight.pop(job.address, None)
        if job.kind is JobKind.REGISTER:
            self._registering.discard(job.key)
        if outcome.failure:
            log.error("[c%d] cannot check a password: %s", job.conn_id, outcome.failure)
            return "accounts-unavailable", "accounts cannot be checked right now; try again later"
        if self.access.generation(job.key) != job.generation:
            return "try-again", f"the account {job.name} changed meanwhile; try again"
        if not outcome.ok:
            what = f"the account {job.name}"
            wait = self._failed(job.address, what, job.conn_id)
            if job.kind is JobKind.CHANGE:
                return "bad-password", "that is not your current password"
            later = f"; wait {wait:.0f} s before trying again" if wait >= 1 else ""
            return "bad-password", f"wrong password for {job.name}{later}"
        return None

    def _failed(self, address: str, what: str, conn_id: int | None) -> float:
        """Count a failure against ``address``, log it; return how long it must now wait."""
        now = self._state.now()
        wait = self.throttle.failed(address, now)
        conn = f"[c{conn_id}] " if conn_id is not None else ""
        log.warning(
            "%sfailed login to %s from %s (%d failures from there in the last minute%s)",
            conn,
            what,
            address,
            self.throttle.failures(address, now),
            f"; refused for {wait:.0f} s" if wait else "",
        )
        return wait

    def take_jobs(self) -> list[Job]:
        """Jobs queued since the last call (the hub runs them)."""
        jobs, self.jobs = self.jobs, []
        return jobs

    def warn_cleartext(self, member: Member) -> None:
        """Tell ``member``, once, that its password crossed the network in the clear."""
        if member.cleartext and not member.warned:
            member.warned = True
            self._state.tell(member, Notice(self._state.now(), "cleartext", CLEARTEXT_WARNING))

    # -- commands from members -----------------------------------------------------------

    def handle(self, member: Member, command: AccountCommand) -> None:
        """``/register``, ``/login``, ``/password`` (``/pass`` only counts as a first line)."""
        state = self._state
        match command:
            case Register(password=password):
                self.warn_cleartext(member)
                problem = self._register_problem(member, password)
                if problem is None:
                    problem = self.start(
                        JobKind.REGISTER, member.id, member.name, _where(member), password
                    )
                if problem is not None:
                    state.error(member, *problem)
                    return
                self._registering.add(name_key(member.name))
            case Login(name=name, password=password):
                self.warn_cleartext(member)
                problem = state.login_problem(name, member)
                if problem is None:
                    problem = self.start(JobKind.LOGIN, member.id, name, _where(member), password)
                if problem is not None:
                    state.error(member, *problem)
            case ChangePassword(old=old, new=new):
                self.warn_cleartext(member)
                problem = self._change_problem(member, new)
                if problem is None:
                    problem = self.start(
                        JobKind.CHANGE, member.id, member.name, _where(member), old, new
                    )
                if problem is not None:
                    state.error(member, *problem)
            case Pass():
                state.error(member, "bad-request", "/pass is only for the first line")
            case _:
                assert_never(command)

    def _register_problem(self, member: Member, password: str) -> Problem | None:
        key = name_key(member.name)
        if member.name.casefold().startswith(GUEST_PREFIX):
            return "bad-name", "guest names cannot be registered; choose one with /nick first"
        if self.access.registered(key) or key in self._registering:
            return "already-registered", f"the name {member.name} is registered already"
        problem = password_problem(password, self._state.limits.min_password_length)
        return None if problem is None else ("weak-password", problem)

    def _change_problem(self, member: Member, new: str) -> Problem | None:
        if member.account is None or member.account != name_key(member.name):
            return "not-logged-in", "log in first: /login NAME PASSWORD"
        problem = password_problem(new, self._state.limits.min_password_length)
        return None if problem is None else ("weak-password", problem)

    def member_done(self, member: Member, job: Job, outcome: Outcome) -> None:
        """A member's job is back: register, log in or change the password."""
        state = self._state
        problem = self.finished(job, outcome)
        if problem is not None:
            state.error(member, *problem)
            return
        now = state.now()
        match job.kind:
            case JobKind.REGISTER:
                if name_key(member.name) != job.key:
                    state.error(member, "try-again", "you changed your name meanwhile; try again")
                    return
                record = AccountRecord(job.key, member.name, outcome.new_hash, now)
                state.change(SaveAccount(record))
                member.account = job.key
                log.info("[c%d] %s registered the name", member.id, member.name)
                state.tell(member, AccountInfo(now, "registered", member.name))
            case JobKind.LOGIN:
                state.log_in(member, job.name, job.key)
            case JobKind.CHANGE:
                record = AccountRecord(job.key, member.name, outcome.new_hash, now)
                state.change(SaveAccount(record))
                log.info("[c%d] %s changed the password", member.id, member.name)
                state.tell(member, AccountInfo(now, "password-changed", member.name))
            case _:
                assert_never(job.kind)


def _too_many(wait: float) -> Problem:
    return (
        "too-many-attempts",
        f"too many failed passwords from your address; try again in {max(1, round(wait))} s",
    )


def _where(member: Member) -> str:
    """The address a member's failures count against (its peer if it has no address)."""
    return member.address if member.address is not None else member.peer
