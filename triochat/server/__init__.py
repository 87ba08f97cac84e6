"""The async layer: the hub task, connections, transports, and the server that wires them.

:mod:`~triochat.server.app` (:class:`ChatServer`) accepts connections and runs each
one; :mod:`~triochat.server.session` reads a connection's commands;
:mod:`~triochat.server.hub` is the one task that owns every room, driving
:mod:`triochat.core.state`; :mod:`~triochat.server.connection` decides when a
member's :mod:`~triochat.server.outbox` is written, through the
:mod:`~triochat.server.transport` seam (which also sets TCP keepalive).
:mod:`~triochat.server.listeners` is the listener table (every door, one accept helper,
one per-address counter, the TLS door), :mod:`~triochat.server.certificates` loads and
reloads TLS certificates, and :mod:`~triochat.server.liveness` pings JSON members that
have gone silent. The cluster bus is injected (:mod:`triochat.bus`).
"""

from triochat.server.app import ChatServer

__all__ = ["ChatServer"]
