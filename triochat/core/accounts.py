"""Accounts in the chat state: registering, logging in, passwords, the server password.

Rules of this module:

* **The state never hashes.** A command that needs a password checked or hashed
  becomes a :class:`~triochat.core.passwords.Job` in :attr:`Accounts.jobs`; the hub
  runs it in a worker thread (reading the stored hash first, in the store's order) and
  hands the :class:`~triochat.core.passwords.Outcome` back through its inbound
  channel, so no room ever waits for scrypt. The account may have changed meanwhile:
  each job carries the account's generation, and a stale outcome is discarded.
* **Throttled per address and per account.** A password check from an address (an
  IPv6 /64) that failed too often, or for an account that failed too often from
  anywhere, is refused before any hashing
  (:class:`~triochat.core.throttle.LoginThrottle`). At most :data:`MAX_JOBS` checks
  are in flight at once, :data:`MAX_JOBS_PER_ADDRESS` per address and
  :data:`MAX_JOBS_PER_ACCOUNT` per account. Every failure is logged with the address;
  no password ever is.
* **The owner goes first.** An address that proved an account's password during this
  run (up to :data:`MAX_KNOWN_PER_ACCOUNT` per account; never a trusted one, which a
  proxy shares with everyone) is *known*: its logins skip the
  account's block and are *urgent* jobs, hashed before any other (the hub's second
  lane), with a budget of their own (:data:`MAX_URGENT_JOBS`). A password change is
  urgent too. So guesses from elsewhere can neither lock the owner out nor queue it.
* **Registrations are rationed** (:class:`~triochat.core.throttle.RegistrationQuota`):
  ``--max-registrations-per-hour`` per address, trusted addresses exempt, and
  :data:`~triochat.core.throttle.SERVER_REGISTRATIONS_PER_HOUR` on the whole server.
* **``--op`` names are the operator's**: only the name as given may be registered,
  not a look-alike with the same name key (``b0ss`` for ``boss``).
* **Warned once.** A member who sends a password over a cleartext connection from
  another machine is told, once, that it crossed the network unencrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, assert_never

from triochat.core.access import ip_address
from triochat.core.admin import AccountCommand, ChangePassword, Login, Pass, Register
from triochat.core.durations import format_remaining
from triochat.core.events import AccountInfo, Notice
from triochat.core.logevents import log_event
from triochat.core.names import name_key
from triochat.core.passwords import Job, JobKind, Outcome, password_problem
from triochat.core.records import AccountRecord, SaveAccount
from triochat.core.throttle import ACCOUNT_POLICY, LoginThrottle, RegistrationQuota, address_key

if TYPE_CHECKING:
    from triochat.core.access import Access
    from triochat.core.model import ChatPort, Member

__all__ = [
    "CLEARTEXT_WARNING",
    "MAX_JOBS",
    "MAX_JOBS_PER_ACCOUNT",
    "MAX_JOBS_PER_ADDRESS",
    "MAX_URGENT_JOBS",
    "Accounts",
    "Problem",
]

log = logging.getLogger(__name__)

MAX_JOBS: Final = 32  # password checks queued for the hashing thread: ~3 s of work at 0.1 s each
MAX_JOBS_PER_ADDRESS: Final = 2  # one address cannot fill the queue with guesses
MAX_JOBS_PER_ACCOUNT: Final = 2  # guesses at one account in flight: a block cannot be outrun
MAX_URGENT_JOBS: Final = 8  # owners' checks in flight (their own budget: never "busy" by guesses)
MAX_KNOWN_PER_ACCOUNT: Final = 4  # addresses remembered per account: home, work, phone, ...
MAX_KNOWN_ACCOUNTS: Final = 10_000  # accounts with known addresses; the least recent forgotten
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
        self.throttle = LoginThrottle()  # by address key (an IPv6 /64)
        self.account_throttle = LoginThrottle(ACCOUNT_POLICY)  # by account, across addresses
        self.registrations = RegistrationQuota(state.limits.max_registrations_per_hour)
        self._server_digest = None if server_password is None else _digest(server_password)
        self.jobs: list[Job] = []  # for the hub: take them with take_jobs()
        self._in_flight: dict[str, int] = {}  # jobs per address key, until their outcome is back
        self._account_flight: dict[str, int] = {}  # guesses (not urgent logins) per account
        self._busy = self._urgent_busy = 0  # jobs in flight, in the two lanes
        self._known: OrderedDict[str, list[str]] = OrderedDict()  # account -> address keys
        self._registering: set[str] = set()  # keys with a registration being hashed

    # -- the gate and the throttle ---------------------------------------------------------

    def gate(self, address: str, given: str | None) -> Problem | None:
        """Check the server password (``--password-file``) of a new connection."""
        if self._server_digest is None:
            return None
        now = self._state.now()
        wait = self.throttle.wait(address_key(address), now)
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
        now = self._state.now()
        where = address_key(address)
        key = name_key(name)
        urgent = kind is JobKind.CHANGE or (kind is JobKind.LOGIN and self.known(key, where))
        guess = kind is JobKind.LOGIN and not urgent
        if kind is not JobKind.REGISTER:
            wait = self.throttle.wait(where, now)
            if wait:
                return _too_many(wait)
        if guess:  # the account's block is checked before any hashing
            wait = self.account_throttle.wait(key, now)
            if wait:
                return _account_blocked(name, wait)
        busy = self._urgent_busy >= MAX_URGENT_JOBS if urgent else self._busy >= MAX_JOBS
        if busy or self._in_flight.get(where, 0) >= MAX_JOBS_PER_ADDRESS:
            return "server-busy", "the server is checking other passwords; try again in a moment"
        if guess and self._account_flight.get(key, 0) >= MAX_JOBS_PER_ACCOUNT:
            return "server-busy", f"other logins to {name} are being checked; try again in a moment"
        generation = self.access.generation(key)
        job = Job(kind, conn_id, key, name, address, generation, password, new_password, urgent)
        self.jobs.append(job)
        self._in_flight[where] = self._in_flight.get(where, 0) + 1
        if urgent:
            self._urgent_busy += 1
        else:
            self._busy += 1
        if guess:
            self._account_flight[key] = self._account_flight.get(key, 0) + 1
        return None

    def known(self, key: str, where: str) -> bool:
        """True if the address key ``where`` proved the account ``key``'s password lately."""
        return where in self._known.get(key, ())

    def _remember(self, key: str, address: str) -> None:
        """``address`` proved the password of ``key``: its next logins go first.

        Not a trusted address: behind a proxy everyone shares it, attackers too.
        """
        where = self._counted_key(address)
        if where is None:
            return
        known = self._known.pop(key, [])
        if where in known:
            known.remove(where)
        known.append(where)
        self._known[key] = known[-MAX_KNOWN_PER_ACCOUNT:]
        while len(self._known) > MAX_KNOWN_ACCOUNTS:
            self._known.popitem(last=False)

    def finished(self, job: Job, outcome: Outcome) -> Problem | None:
        """Book a job's outcome; a problem if it cannot count (stale, store failure, wrong)."""
        where = address_key(job.address)
        _take(self._in_flight, where)
        if job.urgent:
            self._urgent_busy -= 1
        else:
            self._busy -= 1
            if job.kind is JobKind.LOGIN:
                _take(self._account_flight, job.key)
        if job.kind is JobKind.REGISTER:
            self._registering.discard(job.key)
        if outcome.failure:
            log_event(log, "login.check_failed", conn=job.conn_id, reason=outcome.failure)
            self._refund(job)
            return "accounts-unavailable", "accounts cannot be checked right now; try again later"
        if self.access.generation(job.key) != job.generation:
            self._refund(job)
            return "try-again", f"the account {job.name} changed meanwhile; try again"
        if not outcome.ok:
            what = f"the account {job.name}"
            account = job.key if job.kind is JobKind.LOGIN else None
            wait = self._failed(job.address, what, job.conn_id, account)
            if job.kind is JobKind.CHANGE:
                return "bad-password", "that is not your current password"
            later = f"; wait {wait:.0f} s before trying again" if wait >= 1 else ""
            return "bad-password", f"wrong password for {job.name}{later}"
        self._remember(job.key, job.address)
        return None

    def _refund(self, job: Job) -> None:
        """A registration that did not happen does not count against the quota."""
        if job.kind is JobKind.REGISTER:
            self.registrations.refund(self._counted_key(job.address))

    def _failed(
        self, address: str, what: str, conn_id: int | None, account: str | None = None
    ) -> float:
        """Count a failure against ``address`` (and ``account``), log it; return the wait."""
        now = self._state.now()
        where = address_key(address)
        wait = self.throttle.failed(where, now)
        on_account, failures = "", None
        if account is not None:
            wait = max(wait, self.account_throttle.failed(account, now))
            failures = self.account_throttle.failures(account, now)
            on_account = f", {failures} on the account in the last hour"
        log_event(
            log,
            "login.failed",
            _conn=f"[c{conn_id}] " if conn_id is not None else "",
            conn=conn_id,
            what=what,
            address=address,
            failures=self.throttle.failures(where, now),
            _on_account=on_account,
            account=account,
            account_failures=failures,
            _refused=f"; refused for {wait:.0f} s" if wait else "",
            refused_s=round(wait),
        )
        return wait

    def _counted_key(self, address: str) -> str | None:
        """What ``address`` counts as for registrations and known addresses (None: trusted)."""
        host = ip_address(address)
        if host is not None and any(host in net for net in self._state.limits.trusted):
            return None
        return address_key(address)

    def _registration_problem(self, address: str) -> Problem | None:
        """Why ``address`` may not register a name now (too many lately), or None."""
        wait, whose = self.registrations.wait(self._counted_key(address), self._state.now())
        if not wait:
            return None
        later = f"try again in {format_remaining(wait)}"
        if whose == "address":
            limit = self.registrations.per_address
            text = f"your address registered {limit} names in the last hour; {later}"
        else:
            many = self.registrations.server
            text = f"this server took {many} registrations in the last hour; {later}"
        return "too-many-registrations", text

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
                where = _where(member)
                problem = self._register_problem(member, password)
                problem = problem or self._registration_problem(where)
                if problem is None:
                    problem = self.start(JobKind.REGISTER, member.id, member.name, where, password)
                if problem is not None:
                    state.error(member, *problem)
                    return
                self.registrations.record(self._counted_key(where), state.now())
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
        op_name = self.access.config_op_names.get(key)
        if op_name is not None and member.name.casefold() != op_name.casefold():
            return "bad-name", (
                f"the name {member.name} is too like an operator's name to be registered; "
                "choose another with /nick"
            )
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
                    self._refund(job)
                    state.error(member, "try-again", "you changed your name meanwhile; try again")
                    return
                record = AccountRecord(job.key, member.name, outcome.new_hash, now)
                state.change(SaveAccount(record))
                member.account = job.key
                log_event(log, "account.registered", conn=member.id, name=member.name)
                state.tell(member, AccountInfo(now, "registered", member.name))
            case JobKind.LOGIN:
                state.log_in(member, job.name, job.key)
            case JobKind.CHANGE:
                record = AccountRecord(job.key, member.name, outcome.new_hash, now)
                state.change(SaveAccount(record))
                log_event(log, "account.password_changed", conn=member.id, name=member.name)
                state.tell(member, AccountInfo(now, "password-changed", member.name))
            case _:
                assert_never(job.kind)


def _take(counts: dict[str, int], key: str) -> None:
    """One fewer for ``key`` (forgotten at zero)."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _account_blocked(name: str, wait: float) -> Problem:
    return (
        "too-many-attempts",
        f"too many failed passwords for {name} lately; try again in {max(1, round(wait))} s",
    )


def _too_many(wait: float) -> Problem:
    return (
        "too-many-attempts",
        f"too many failed passwords from your address; try again in {max(1, round(wait))} s",
    )


def _where(member: Member) -> str:
    """The address a member's failures count against (its peer if it has no address)."""
    return member.address if member.address is not None else member.peer
