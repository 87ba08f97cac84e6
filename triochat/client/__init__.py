"""The terminal client: ``triochat client``.

:mod:`~triochat.client.session` pairs a line source with the network connection,
:mod:`~triochat.client.linesource` reads the terminal or a pipe, and
:mod:`~triochat.client.view` renders events with rich (peers' text is never markup).
"""

from triochat.client.session import SessionEnd, add_client_arguments, chat_session, run_client

__all__ = ["SessionEnd", "add_client_arguments", "chat_session", "run_client"]
