"""The terminal client: ``triochat client``.

:mod:`~triochat.client.chat` pairs a line source with the network connection and
reconnects when it is lost (:mod:`~triochat.client.reconnect` has the back-off schedule,
:mod:`~triochat.client.connection` the JSON lines, decoded by
:mod:`triochat.core.jsonwire`, and the hello; :mod:`~triochat.client.wording` what the
session says); :mod:`~triochat.client.session` is the command-line program;
:mod:`~triochat.client.rooms` keeps the rooms, the current one, unread counts and the
last id shown in each (sans-IO); :mod:`~triochat.client.requests` turns typed lines into
requests; :mod:`~triochat.client.completion` is what Tab completes;
:mod:`~triochat.client.linesource` reads the terminal or a pipe;
:mod:`~triochat.client.render` words and styles each event type (a table; peers' text
is never markup) and :mod:`~triochat.client.view` prints them;
:mod:`~triochat.client.options` defines the flags.
"""

from triochat.client.session import SessionEnd, add_client_arguments, chat_session, run_client

__all__ = ["SessionEnd", "add_client_arguments", "chat_session", "run_client"]
