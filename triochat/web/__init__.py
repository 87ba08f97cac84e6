"""The web front door: the page and a WebSocket into the same rooms, on one port.

* :mod:`~triochat.web.http`: what to answer to an HTTP request (the page's files, the
  security headers, which origins may open the chat). No I/O.
* :mod:`~triochat.web.frames`: WebSocket messages to chat lines and back. No I/O.
* :mod:`~triochat.web.stream`: an accepted WebSocket as a ``trio.abc.Stream`` of lines,
  which the chat server serves like any other connection.
* :mod:`~triochat.web.server`: :class:`WebServer`, the listener and each connection's
  HTTP stage and upgrade.
* ``static/``: the page itself: plain HTML, CSS and JavaScript modules, no build step.

See docs/web.md.
"""

from triochat.web.http import parse_hosts, parse_origins
from triochat.web.server import WebServer

__all__ = ["WebServer", "parse_hosts", "parse_origins"]
