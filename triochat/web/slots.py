"""The HTTP stage's slots: a bound in all, a share per address, and room for newcomers.

A connection holds a slot from its accept until it becomes a WebSocket or closes
(each is bounded by the head deadline, see :mod:`triochat.web.server`). Slowloris
holds slots on purpose: hundreds of connections that never finish a request head,
re-opened as they are closed. Three rules keep the page loading for everyone else:

* **In all**, at most ``limit`` connections hold a slot.
* **Per address**, at most ``--max-per-address`` (``--trusted`` addresses and
  connections with no address, memory streams, are exempt). An IPv6 ``/64`` counts as
  one address: it is what one host or one customer gets.
* **Newcomers are not locked out.** When every slot is taken, a connection from an
  address holding fewer slots than the biggest holder takes one of that holder's:
  its oldest connection that is not being answered (waiting for a head, or idle
  between keep-alive requests) is closed. So whoever holds the most gives way first,
  trusted addresses too, and one address (or a few) can never hold the slots that
  others need; a newcomer is refused only when no address holds more than it does.

No I/O beyond cancelling the evicted connection's cancel scope.
"""

from __future__ import annotations

import ipaddress
from typing import Final, Literal

import trio

from triochat.config import ServerConfig, is_trusted

__all__ = ["HttpSlots", "Slot", "address_group"]

IPV6_GROUP: Final = 64  # prefix length counted as one address (one host, one customer)


def address_group(host: str | None) -> str | None:
    """What ``host`` is counted under: itself, its ``/64`` for IPv6, None for no address."""
    if host is None:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_GROUP), strict=False))
    return str(address)


class Slot:
    """One connection's place in the HTTP stage (see :meth:`HttpSlots.admit`)."""

    __slots__ = ("answering", "group", "held", "scope")

    def __init__(self, group: str | None, scope: trio.CancelScope) -> None:
        self.group = group
        self.scope = scope  # cancelled if the slot is given to a newcomer
        self.answering = False  # a request is being read or answered: evicted last
        self.held = True  # False once released (or evicted)


class HttpSlots:
    """The slots of one web server's HTTP stage (module docstring)."""

    __slots__ = ("_config", "_groups", "evicted", "limit", "total")

    def __init__(self, config: ServerConfig, limit: int) -> None:
        """``limit`` slots in all; the share per address is ``config.max_per_address``."""
        self._config = config
        self.limit = limit
        self.total = 0
        self.evicted = 0  # connections closed so far to make room for a newcomer
        self._groups: dict[str | None, dict[Slot, None]] = {}  # oldest first

    def admit(self, host: str | None, scope: trio.CancelScope) -> Slot | Literal["all", "address"]:
        """A slot for a connection from ``host`` (its ``scope`` may be cancelled to evict it).

        Returns the slot, or which limit refuses it: ``address`` (its share is full)
        or ``all`` (every slot is taken by addresses holding no more than it does).
        """
        config = self._config
        group = address_group(host)
        mine = self._groups.get(group, {})
        limited = (
            group is not None
            and config.max_per_address > 0
            and not is_trusted(host or "", config.trusted)
        )
        if limited and len(mine) >= config.max_per_address:
            return "address"
        if self.total >= self.limit and not self._evict_for(len(mine)):
            return "all"
        slot = Slot(group, scope)
        self._groups.setdefault(group, {})[slot] = None
        self.total += 1
        return slot

    def release(self, slot: Slot) -> None:
        """Give ``slot`` back (nothing if it was taken for a newcomer already)."""
        if not slot.held:
            return
        slot.held = False
        self.total -= 1
        group = self._groups[slot.group]
        del group[slot]
        if not group:
            del self._groups[slot.group]

    def _evict_for(self, holding: int) -> bool:
        """Free a slot of the biggest holder if it holds more than ``holding``; True if freed."""
        biggest = max(self._groups.values(), key=len)
        if len(biggest) <= holding:
            return False
        victim = next((slot for slot in biggest if not slot.answering), next(iter(biggest)))
        self.release(victim)
        victim.scope.cancel()
        self.evicted += 1
        return True
