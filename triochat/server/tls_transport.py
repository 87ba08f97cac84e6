"""TLS on the socket's descriptor: an ``ssl.SSLObject`` between two memory buffers.

:class:`TlsTransport` is to a TLS connection what
:class:`~triochat.server.transport.TcpTransport` is to a plain one: it owns the
socket's descriptor and moves bytes with ``os.read`` / ``os.write``, and OpenSSL only
ever sees memory (two ``ssl.MemoryBIO``). Measured (docs/benchmarks.md, "The direct
TLS transport"): ``trio.SSLStream`` under a ``StreamTransport`` took about twice plain
TCP's CPU per delivery (this transport: 1.1-1.2x), because every batch went through a
writer task and SSLStream's locks and retry loop, and each idle connection kept a
suspended ``receive_some`` frame chain (36 KB per idle connection; now 25, plain 6).

* **Writes.** :meth:`TlsTransport.try_write` encrypts the whole flush (one record per
  16 KiB) and writes the ciphertext with one non-blocking ``os.write``, with no task.
  What the kernel does not take cannot be encrypted again (TLS numbers its records),
  so the transport keeps that ciphertext and reports as taken only the plaintext of
  the records that went out whole. The rest goes back to the outbox, and the writer
  task's next :meth:`~TlsTransport.send_all`, which starts with exactly those bytes
  (the outbox puts them back first), writes the kept ciphertext and skips them. So
  back-pressure is the plain transport's: a peer that stops reading fills its outbox,
  and the transport holds at most one flush of ciphertext besides.
* **Reads.** :meth:`TlsTransport.try_read` decrypts what one ``os.read`` brought:
  every complete record, until OpenSSL wants more. An idle connection waits in
  ``trio.lowlevel.wait_readable`` on the descriptor, holding no frame of its own.
* **The same contract.** A reset, a broken record or a connection cut without TLS's
  ``close_notify`` is :class:`~triochat.server.transport.ConnectionLost`; a
  ``close_notify`` is the end of input (``b""``). Closing sends a ``close_notify`` if
  the kernel takes it at once, and never waits.
* **The handshake** (:meth:`TlsTransport.do_handshake`) raises what
  ``trio.SSLStream.do_handshake`` raises: ``trio.BrokenResourceError`` caused by the
  ``ssl`` error (or the ``OSError``), so the door reports failures as before. Its
  deadline is the caller's cancel scope. No alert is sent on failure: a cleartext
  client on the TLS port is told what the port wants in cleartext instead.
* **Memory.** Renegotiation is off, and no session tickets are issued (no client of
  ours resumes sessions; each ticket cost CPU and bytes per handshake). OpenSSL frees
  its record buffers while a connection is idle (CPython sets
  ``SSL_MODE_RELEASE_BUFFERS``); input is fed to OpenSSL one record's worth at a
  time, so the memory buffers stay small.

Streams without a descriptor (memory streams in tests, non-POSIX systems) get
:class:`SslStreamTransport`: ``trio.SSLStream`` under a
:class:`~triochat.server.transport.StreamTransport`, the way every TLS connection
used to be served. :func:`tls_server_side` picks one.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Awaitable
from typing import Final, Protocol

import trio

from triochat.server.transport import RECEIVE_BYTES, ConnectionLost, StreamTransport, Transport

__all__ = [
    "RECORD_BYTES",
    "HandshakingTransport",
    "SslStreamTransport",
    "TlsStream",
    "TlsTransport",
    "prepare_context",
    "tls_server_side",
]

# OpenSSL's memory buffers keep the largest size they ever held, for the rest of the
# connection (a read-write BIO never shrinks). So each SSL_write is at most one record
# of RECORD_BYTES, and its ciphertext is taken out before the next: measured, a
# 256 KiB flush then leaves 11 KB behind instead of 340 KB, for 9 % more CPU than
# 16 KiB records (4 KiB records: 54 % more). Input is fed in pieces of _FEED_BYTES.
RECORD_BYTES: Final = 8192  # plaintext per TLS record we send (TLS allows up to 16 KiB)
_FEED_BYTES: Final = 8192  # ciphertext handed to OpenSSL per call
_READ_BYTES: Final = 16384  # plaintext asked of OpenSSL per call: a whole record


class HandshakingTransport(Transport, Protocol):
    """A TLS transport before (and after) its handshake."""

    async def do_handshake(self) -> None:
        """Do the server side of the handshake.

        Raises:
            trio.BrokenResourceError: it failed; the ``ssl`` error (or ``OSError``) is
                its ``__cause__``.
        """


def prepare_context(context: ssl.SSLContext) -> None:
    """Turn off renegotiation and session tickets on a server context (once; cheap after).

    Done here rather than where the context is made, so that every context a TLS
    connection uses (including one reloaded on SIGHUP) gets it.
    """
    if context.options & ssl.OP_NO_RENEGOTIATION:
        return
    context.num_tickets = 0  # TLS 1.3 tickets: none (no client of ours resumes a session)
    context.options |= ssl.OP_NO_RENEGOTIATION


def tls_server_side(stream: trio.abc.Stream, context: ssl.SSLContext) -> HandshakingTransport:
    """The server side of a TLS connection over ``stream``; handshake not done yet.

    A TCP socket on POSIX gets :class:`TlsTransport` (the descriptor, directly); any
    other stream :class:`SslStreamTransport`.
    """
    prepare_context(context)
    if os.name == "posix" and isinstance(stream, trio.SocketStream):
        return TlsTransport(stream, context)
    return SslStreamTransport(stream, context)


class SslStreamTransport(StreamTransport):
    """``trio.SSLStream`` over any stream, read and written through the stream."""

    __slots__ = ()

    def __init__(self, stream: trio.abc.Stream, context: ssl.SSLContext) -> None:
        super().__init__(trio.SSLStream(stream, context, server_side=True))

    async def do_handshake(self) -> None:
        """See :meth:`HandshakingTransport.do_handshake`."""
        assert isinstance(self.stream, trio.SSLStream)
        await self.stream.do_handshake()


class TlsTransport:
    """TLS over a TCP socket's descriptor (see the module docstring)."""

    __slots__ = (
        "_eof",
        "_incoming",
        "_outgoing",
        "_owed",
        "_socket_stream",
        "_ssl",
        "_unsent",
        "direct",
        "fd",
    )

    def __init__(self, stream: trio.SocketStream, context: ssl.SSLContext) -> None:
        self._socket_stream = stream
        self.fd = stream.socket.fileno()  # -1 once closed: a late call fails, never misdirects
        self.direct = True
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._unsent = b""  # ciphertext made but not written yet: always written first
        self._owed = 0  # plaintext bytes whose ciphertext is in _unsent, reported not taken
        self._eof = False  # the peer's close_notify has been read

    @property
    def stream(self) -> trio.abc.Stream:
        """A trio stream over this connection (to refuse or close it), made per call."""
        return TlsStream(self)

    # -- the handshake ---------------------------------------------------------------------

    async def do_handshake(self) -> None:
        """See :meth:`HandshakingTransport.do_handshake`. Bounded by the caller's scope."""
        ssl_object = self._ssl
        while True:
            try:
                ssl_object.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
            try:
                await self._write_out()
                if done:
                    return
                await trio.lowlevel.wait_readable(self.fd)
                data = os.read(self.fd, _FEED_BYTES)
            except (ConnectionLost, OSError) as exc:
                cause = exc.__cause__ if isinstance(exc, ConnectionLost) else exc
                raise trio.BrokenResourceError(f"connection lost: {exc}") from cause
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()  # the next do_handshake raises SSLEOFError

    # -- reading ---------------------------------------------------------------------------

    def try_read(self) -> bytes | None:
        """Decrypted bytes (``b""`` after the peer's close_notify), or None if none yet.

        Raises:
            ConnectionLost: reset, a record that does not decrypt, or the connection
                closed without a close_notify.
        """
        if self._eof:
            return b""
        incoming = self._incoming
        try:
            data = os.read(self.fd, RECEIVE_BYTES)
        except BlockingIOError:
            # Records that came with the end of the handshake are in the buffer already.
            if not incoming.pending:
                return None
            data = b""
        except OSError as exc:  # ECONNRESET and friends
            raise ConnectionLost(str(exc)) from None
        else:
            if not data:
                raise ConnectionLost("the peer closed the connection without a TLS close_notify")
        read = self._ssl.read
        chunks: list[bytes] = []
        view = memoryview(data)
        try:
            # _FEED_BYTES at a time, so that the input buffer stays small.
            for start in range(0, max(1, len(data)), _FEED_BYTES):
                incoming.write(view[start : start + _FEED_BYTES])
                try:
                    while chunk := read(_READ_BYTES):
                        chunks.append(chunk)
                    self._eof = True  # b"": the peer's close_notify
                    break
                except ssl.SSLWantReadError:
                    pass
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS error: {exc}") from None
        if chunks:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return b"" if self._eof else None

    def wait_readable(self) -> Awaitable[None]:
        """Wait until :meth:`try_read` has something (data, EOF or an error)."""
        # As TcpTransport: a plain method returning trio's awaitable, so that an idle
        # connection holds no suspended frame of ours.
        return trio.lowlevel.wait_readable(self.fd)  # noqa: ASYNC105 - awaited by the caller

    # -- writing ---------------------------------------------------------------------------

    def _encrypt(self, data: bytes | memoryview) -> tuple[bytes, list[tuple[int, int]]]:
        """Encrypt ``data``, one record per ``RECORD_BYTES``: the ciphertext and its records.

        Each record is ``(ciphertext end, plaintext end)``, offsets into the ciphertext
        and into ``data``. Ciphertext OpenSSL made earlier (a reply to something it
        read, such as a TLS 1.3 key update) comes first.
        """
        write = self._ssl.write
        read = self._outgoing.read
        earlier = read() if self._outgoing.pending else b""
        if len(data) <= RECORD_BYTES:
            write(data)
            cipher = earlier + read() if earlier else read()
            return cipher, [(len(cipher), len(data))]
        view = memoryview(data)
        parts = [earlier]
        ends = []
        size = len(earlier)
        for start in range(0, len(data), RECORD_BYTES):
            part = view[start : start + RECORD_BYTES]
            write(part)
            parts.append(read())
            size += len(parts[-1])
            ends.append((size, start + len(part)))
        return b"".join(parts), ends

    def try_write(self, data: bytes) -> int:
        """Encrypt and write without waiting; return how many plaintext bytes are done.

        The rest is encrypted already: it must be the start of the next
        :meth:`send_all` (module docstring). Never raises: a broken connection shows
        up in that ``send_all``.
        """
        if self._unsent:
            # Ciphertext from before (a writer cancelled, a close_notify) goes first; if
            # it cannot all go now, leave this to the writer.
            try:
                self._write_now()
            except OSError:
                return 0
            if self._unsent:
                return 0
        outgoing = self._outgoing
        try:
            if len(data) <= RECORD_BYTES and not outgoing.pending:  # the usual flush
                self._ssl.write(data)
                cipher = outgoing.read()
                ends = None
            else:
                cipher, ends = self._encrypt(data)
        except ssl.SSLError:
            return 0  # the connection is broken: the writer's send_all says so
        try:
            written = os.write(self.fd, cipher)
        except OSError:  # BlockingIOError (full), or broken: send_all finds out
            written = 0
        if written == len(cipher):
            return len(data)
        self._unsent = cipher[written:]
        if ends is None:  # one record, not all written
            self._owed = len(data)
            return 0
        taken = 0
        for cipher_end, plain_end in ends:
            if cipher_end > written:
                break
            taken = plain_end
        self._owed = len(data) - taken
        return taken

    async def send_all(self, data: bytes | memoryview) -> None:
        """Write ``data`` (after what :meth:`try_write` left), waiting as long as needed.

        Raises:
            ConnectionLost: the connection broke while sending.
        """
        view = memoryview(data)
        if self._owed:
            skip = min(self._owed, len(view))  # encrypted already, in _unsent
            self._owed -= skip
            view = view[skip:]
        if view:
            try:
                cipher, _ = self._encrypt(view)
            except ssl.SSLError as exc:
                raise ConnectionLost(f"TLS error: {exc}") from None
            self._unsent += cipher
        await self._write_out()

    def _write_now(self) -> None:
        """Write what ciphertext the kernel takes now; keep the rest in ``_unsent``.

        Raises:
            OSError: the connection is broken.
        """
        if self._outgoing.pending:
            self._unsent += self._outgoing.read()
        if not self._unsent:
            return
        try:
            written = os.write(self.fd, self._unsent)
        except BlockingIOError:
            return
        self._unsent = self._unsent[written:]

    async def _write_out(self) -> None:
        """Write all pending ciphertext, waiting for the kernel to take it.

        Cancelling it keeps what is left in ``_unsent``, in order.

        Raises:
            ConnectionLost: the connection broke (its ``__cause__`` is the OSError).
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self._write_now()
            while self._unsent:
                await trio.lowlevel.wait_writable(self.fd)
                self._write_now()
        except OSError as exc:
            raise ConnectionLost(str(exc)) from exc
        await trio.lowlevel.cancel_shielded_checkpoint()

    # -- closing ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Send a ``close_notify`` if the kernel takes it at once, then close the socket.

        Never waits for the peer (one that does not read must not hold the close).
        """
        if self.fd >= 0:
            # unwrap queues our close_notify, then raises SSLWantReadError: the peer's
            # has not come (we do not wait for it). A write error: the peer is gone.
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._ssl.unwrap()
            with contextlib.suppress(OSError):
                self._write_now()
            self._unsent = b""
            self.fd = -1
        await self._socket_stream.aclose()


class TlsStream(trio.abc.Stream):
    """A :class:`TlsTransport` seen as a ``trio.abc.Stream``, for refusing and closing.

    Errors are trio's (``BrokenResourceError``), not ``ConnectionLost``. It reads and
    writes through the transport, so the two must not be used at the same time.
    """

    __slots__ = ("_pending", "_tls")

    def __init__(self, tls: TlsTransport) -> None:
        self._tls = tls
        self._pending = b""  # read but not returned (beyond max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send ``data``."""
        if self._tls.fd < 0:
            raise trio.ClosedResourceError("the TLS connection is closed")
        try:
            await self._tls.send_all(bytes(data))
        except ConnectionLost as exc:
            raise trio.BrokenResourceError(str(exc)) from None

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket can take more."""
        if self._tls.fd < 0:
            raise trio.ClosedResourceError("the TLS connection is closed")
        await trio.lowlevel.wait_writable(self._tls.fd)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Decrypted bytes; ``b""`` after the peer's close_notify."""
        tls = self._tls
        waited = False
        while not self._pending:
            if tls.fd < 0:
                raise trio.ClosedResourceError("the TLS connection is closed")
            try:
                data = tls.try_read()
            except ConnectionLost as exc:
                raise trio.BrokenResourceError(str(exc)) from None
            if data is None:
                await tls.wait_readable()
                waited = True
            elif data:
                self._pending = data
            else:
                break  # the end
        if not waited:
            await trio.lowlevel.checkpoint()
        out = self._pending
        if max_bytes is not None and max_bytes < len(out):
            out, self._pending = out[:max_bytes], out[max_bytes:]
        else:
            self._pending = b""
        return out

    async def aclose(self) -> None:
        """Close the connection (see :meth:`TlsTransport.aclose`)."""
        await self._tls.aclose()
