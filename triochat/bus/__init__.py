"""The cluster bus: how several nodes form one chat.

* :mod:`~triochat.bus.bus`: what the hub sees (the :class:`Bus` port, its statistics).
* :mod:`~triochat.bus.redis_bus`: :class:`~triochat.bus.redis_bus.RedisBus`, the
  publisher, the log reader and the heartbeat, over Redis (or Valkey).
* :mod:`~triochat.bus.redis_link`: a small adapter the bus calls (the calls it makes,
  the errors that mean "Redis is away", two connections).
* :mod:`~triochat.bus.resp`: the thin Redis client under it (hiredis's parser over a
  trio stream), the only module that imports a Redis library.
* :mod:`~triochat.bus.log`: the log's keys and entries, read back without I/O.
* :mod:`~triochat.bus.scripts`: the Lua scripts run in Redis, and its keys.

The hub is given a bus; it never builds one (see :class:`triochat.server.ChatServer`).
"""

from triochat.bus.bus import Bus, BusStatistics, ClusterError, Deliver, first_leaf

__all__ = ["Bus", "BusStatistics", "ClusterError", "Deliver", "first_leaf"]
