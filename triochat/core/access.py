"""Who may do what: registered names, operators, bans and mutes, in memory. No I/O, no trio.

The chat state owns one :class:`Access`; it is loaded from the store at start-up and
changed only through :meth:`Access.apply`, with the same :data:`Change` objects the
state puts in its batch for the store, so memory and disk cannot drift apart.

Only what every name check needs is kept: the *keys* of registered names (a few dozen
bytes each), never their hashes, which the hub reads from the store when a password
is checked. Bans and mutes are few; an address is matched against each banned range.

Bans and mutes with an end expire on their own: the lookups ignore an expired one at
once, and :meth:`Access.expired` hands the state the changes that delete them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import assert_never

from triochat.core.names import name_error, name_key
from triochat.core.records import (
    BanRecord,
    Change,
    DropAccount,
    DropBan,
    DropMute,
    DropOp,
    MuteRecord,
    OpRecord,
    SaveAccount,
    SaveBan,
    SaveMute,
    SaveOp,
)

__all__ = ["Access", "BanTarget", "ban_target", "ip_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
BanTarget = tuple[str, str, str]  # (kind, target, shown): see BanRecord


def ip_address(host: str) -> Address | None:
    """``host`` as an address (an IPv4 address seen through IPv6 as itself), or None."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ban_target(text: str) -> BanTarget | str:
    """What ``/ban TEXT`` is about: ``(kind, target, shown)``, or why it is neither.

    Anything that reads as an IP address or ``ADDRESS/PREFIX`` is an address range
    (so ``10.0.0.5`` is an address, though it would be a valid name); anything else
    must be a valid name, and is banned by its name key.
    """
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        problem = name_error(text)
        if problem is not None:
            return f"{text} is neither a name nor an ADDRESS[/PREFIX]: {problem}"
        return "name", name_key(text), text
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:  # ::ffff:10.0.0.5 is 10.0.0.5
            network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return "address", str(network), str(network)


class Access:
    """Registered names, operators, bans and mutes (see the module docstring)."""

    def __init__(self, config_ops: Iterable[str] = ()) -> None:
        """``config_ops`` are the names given with ``--op``."""
        self.config_op_names = {name_key(name): name for name in config_ops}  # key -> as given
        self.config_ops: frozenset[str] = frozenset(self.config_op_names)
        self._accounts: dict[str, int] = {}  # name key -> generation (bumped on each change)
        self._generation = 0
        self.ops: dict[str, OpRecord] = {}  # made with /op (stored)
        self.bans: dict[str, BanRecord] = {}  # by target
        self._networks: dict[str, Network] = {}  # address bans, parsed once
        self.mutes: dict[str, MuteRecord] = {}  # by name key

    # -- loading and changing -----------------------------------------------------------

    def load(
        self,
        accounts: Iterable[str],
        ops: Iterable[OpRecord],
        bans: Iterable[BanRecord],
        mutes: Iterable[MuteRecord],
    ) -> None:
        """Take what the store holds (at start-up)."""
        for key in accounts:
            self.apply_account(key)
        for op in ops:
            self.apply(SaveOp(op))
        for ban in bans:
            self.apply(SaveBan(ban))
        for mute in mutes:
            self.apply(SaveMute(mute))

    def apply_account(self, key: str) -> int:
        """Mark ``key`` registered (or its password changed); return its new generation."""
        self._generation += 1
        self._accounts[key] = self._generation
        return self._generation

    def apply(self, change: Change) -> None:
        """Make a change the state has also put in its batch for the store."""
        match change:
            case SaveAccount(record=record):
                self.apply_account(record.key)
            case DropAccount(key=key):
                self._accounts.pop(key, None)
            case SaveOp(record=record):
                self.ops[record.key] = record
            case DropOp(key=key):
                self.ops.pop(key, None)
            case SaveBan(record=record):
                self.bans[record.target] = record
                if record.kind == "address":
                    self._networks[record.target] = ipaddress.ip_network(record.target)
            case DropBan(target=target):
                self.bans.pop(target, None)
                self._networks.pop(target, None)
            case SaveMute(record=record):
                self.mutes[record.key] = record
            case DropMute(key=key):
                self.mutes.pop(key, None)
            case _:
                assert_never(change)

    def expired(self, now: float) -> list[tuple[str, Change]]:
        """The changes that delete every ban and mute whose time is up, each described."""
        changes: list[tuple[str, Change]] = [
            (f"the ban on {ban.shown}", DropBan(ban.target))
            for ban in self.bans.values()
            if _over(ban.until, now)
        ]
        changes += [
            (f"the mute of {mute.name}", DropMute(mute.key))
            for mute in self.mutes.values()
            if _over(mute.until, now)
        ]
        return changes

    # -- questions ------------------------------------------------------------------------

    def registered(self, key: str) -> bool:
        """True if the name with this key is registered."""
        return key in self._accounts

    def generation(self, key: str) -> int:
        """The account's version (0: not registered); it changes with every change."""
        return self._accounts.get(key, 0)

    @property
    def accounts(self) -> int:
        """How many names are registered."""
        return len(self._accounts)

    def is_op(self, account: str | None) -> bool:
        """True if ``account`` (the key a member has logged into, if any) is an operator.

        An operator from ``--op`` needs its name registered too: until then, the name
        gives no powers (anyone could take it otherwise).
        """
        if account is None or account not in self._accounts:
            return False
        return account in self.config_ops or account in self.ops

    def name_ban(self, key: str, now: float) -> BanRecord | None:
        """The ban in force on the name with this key, if any."""
        ban = self.bans.get(key)
        if ban is None or ban.kind != "name" or _over(ban.until, now):
            return None
        return ban

    def address_ban(self, host: str | None, now: float) -> BanRecord | None:
        """The ban in force on the address ``host`` (None: no address), if any."""
        if host is None or not self._networks:
            return None
        address = ip_address(host)
        if address is None:
            return None
        for target, network in self._networks.items():
            if address in network:
                ban = self.bans[target]
                if not _over(ban.until, now):
                    return ban
        return None

    def mute(self, key: str, now: float) -> MuteRecord | None:
        """The mute in force on the name with this key, if any."""
        mute = self.mutes.get(key)
        if mute is None or _over(mute.until, now):
            return None
        return mute


def _over(until: float | None, now: float) -> bool:
    return until is not None and until <= now
