"""The terminal client: ``triochat client``.

:mod:`~triochat.client.session` pairs a line source with the network connection and
reconnects when it is lost (:mod:`~triochat.client.reconnect` has the back-off schedule,
:mod:`~triochat.client.connection` the JSON lines and the hello);
:mod:`~triochat.client.rooms` keeps the rooms, the current one, unread counts and the
last id shown in each (sans-IO); :mod:`~triochat.client.requests` turns typed lines into
requests; :mod:`~triochat.client.linesource` reads the terminal or a pipe;
:mod:`~triochat.client.view` renders events with rich (peers' text is never markup);
:mod:`~triochat.client.options` defines the flags.
"""

from triochat.client.session import SessionEnd, add_client_arguments, chat_session, run_client

__all__ = ["SessionEnd", "add_client_arguments", "chat_session", "run_client"]
