"""What the client says about the session itself: refusals, endings, reconnects. No I/O.

The server's events are worded by :mod:`.render`; these are the client's own lines,
kept together so that the session (:mod:`.chat`) reads as decisions only.
"""

from __future__ import annotations

from typing import Final

from triochat.client.connection import Refusal
from triochat.client.rooms import ResumeSummary

__all__ = [
    "PASSWORD_ENV",
    "SERVER_PASSWORD_ENV",
    "ask_text",
    "first_refusal_text",
    "resume_report",
    "retry_reason",
    "secret_wanted",
    "unconfirmed_quit_text",
]

PASSWORD_ENV: Final = "TRIOCHAT_PASSWORD"  # the registered name's password, for the hello
SERVER_PASSWORD_ENV: Final = "TRIOCHAT_SERVER_PASSWORD"  # a private server's password


SECRET_FOR: Final = {  # hello errors a person can answer at a password prompt
    "name-registered": "password",
    "bad-password": "password",
    "server-password": "server_password",
}


def secret_wanted(refusal: Refusal) -> str | None:
    """Which hello field would answer this refusal (``password``, ``server_password``)."""
    return SECRET_FOR.get(refusal.code) if refusal.kind == "error" else None


def ask_text(refusal: Refusal, name: str, peer: str) -> str:
    """The password prompt for a refusal that :func:`secret_wanted` can answer."""
    if refusal.code == "server-password":
        again = " (that one was wrong)" if "wrong" in refusal.text else ""
        return f"{peer} is private{again}; its server password: "
    if refusal.code == "bad-password":
        return f"wrong password for {name}; try again: "
    return f"{name} is registered; its password: "


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def resume_report(summary: ResumeSummary) -> str:
    """The line shown once a reconnect has caught up: ``reconnected; 3 missed messages``."""
    text = f"reconnected; {_plural(summary.missed, 'missed message')}"
    if summary.skipped:
        text += f" ({summary.skipped} older ones were not replayed; /history shows them)"
    if summary.lost_rooms:
        text += f"; not back in {', '.join(summary.lost_rooms)}"
    return text


def retry_reason(refusal: Refusal, peer: str, me: str) -> str:
    """A few words for the status line on why a reconnect's hello failed."""
    if refusal.kind == "error":  # name-taken: the old connection is not dead to it yet
        return f"{peer} still has {me}"
    if refusal.kind == "timeout":
        return f"no welcome from {peer}"
    if refusal.kind == "closed":
        return f"{peer} closed the connection"
    return refusal.text


def first_refusal_text(refusal: Refusal, name: str, peer: str, welcome_timeout: float) -> str:
    """Why the first hello failed, as the one line the client ends with."""
    if refusal.kind == "timeout":
        return f"no welcome from {peer} within {welcome_timeout:g}s; is it a triochat server?"
    if refusal.kind == "closed":
        return f"{peer} closed the connection before we could join"
    if refusal.kind == "error" and refusal.code == "name-registered":
        return (
            f"cannot join as {name!r}: the name is registered; put its password in "
            f"{PASSWORD_ENV}, or choose another name with --name"
        )
    if refusal.kind == "error" and refusal.code == "bad-password":
        return f"cannot join as {name!r}: the password in {PASSWORD_ENV} is wrong"
    if refusal.kind == "error" and refusal.code == "server-password":
        return f"{peer} needs its server password: put it in {SERVER_PASSWORD_ENV}"
    if refusal.kind == "error":
        return f"cannot join as {name!r}: {refusal.text}; choose another name with --name"
    return f"{peer} did not let us join: {refusal.text}"


def unconfirmed_quit_text(peer: str, quit_idle_timeout: float) -> str:
    """The server never closed the connection after our quit."""
    return (
        f"{peer} did not confirm within {quit_idle_timeout:g}s that it received"
        " everything; some lines may not have been delivered"
    )
