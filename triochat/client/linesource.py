"""Where the client's input lines come from: a pipe, a terminal, or a test.

Rules of this module:

* The client only sees the :class:`LineSource` interface: ``await receive_line()``
  returns one line without its line end, or ``None`` at end of input.
* Blocking reads happen in a worker thread started with
  ``trio.to_thread.run_sync(..., abandon_on_cancel=True)``: when the session ends for
  another reason (the server went away) the read is abandoned, not waited for.
* :class:`LineEditor` is sans-IO (keys in, lines and a redraw string out), so the
  editing rules are covered by plain synchronous tests.
* On a terminal, everything written to the screen goes through :meth:`Terminal.above`,
  which holds one lock while it clears the line being typed, lets output be printed,
  and redraws the prompt and the typed text underneath. That is what keeps incoming
  messages from clobbering the line being typed.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Final, Protocol

import trio
from rich.cells import cell_len

__all__ = [
    "ChannelLineSource",
    "LineEditor",
    "LineSource",
    "PipeLineSource",
    "Terminal",
    "lines_from",
]

MAX_INPUT_LINE_BYTES: Final = 64 * 1024  # a pipe line longer than this is sent in pieces
READ_PIPE_BYTES: Final = 65536  # one pipe read
READ_CHUNK_BYTES: Final = 1024  # one terminal read; a paste arrives over several reads
HISTORY_LINES: Final = 500  # lines kept for the up/down arrows; memory only

CLEAR_LINE: Final = "\r\x1b[K"  # carriage return, then erase to the end of the line


class LineSource(Protocol):
    """Anything the client can take input lines from."""

    async def receive_line(self) -> str | None:
        """Return the next line without its line end, or None at end of input."""
        ...


class ChannelLineSource:
    """Lines from a trio memory channel; end of input when the channel is closed.

    Tests inject lines with this, so they decide exactly when the "user" types.
    """

    def __init__(self, receive_channel: trio.MemoryReceiveChannel[str]) -> None:
        self._channel = receive_channel

    async def receive_line(self) -> str | None:
        """Return the next line sent into the channel, or None once it is closed."""
        try:
            return await self._channel.receive()
        except trio.EndOfChannel:
            return None


def lines_from(lines: Iterable[str]) -> ChannelLineSource:
    """A line source that yields ``lines`` and then end of input."""
    items = list(lines)
    send, receive = trio.open_memory_channel[str](len(items))
    for line in items:
        send.send_nowait(line)
    send.close()
    return ChannelLineSource(receive)


class PipeLineSource:
    """Lines read from a file descriptor (normally stdin, fd 0) in a worker thread.

    Used whenever the client is not driving an interactive terminal: stdin is a pipe or
    a file, or output goes somewhere other than a terminal. Invalid UTF-8 becomes U+FFFD
    (the server would do the same); a line longer than ``MAX_INPUT_LINE_BYTES`` is
    passed on in pieces.

    The thread reads with ``os.read`` rather than through ``sys.stdin``: a thread left
    blocked inside a buffered reader holds that reader's lock, and the interpreter aborts
    at exit when it cannot take it ("could not acquire lock ... at interpreter shutdown").
    """

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False

    def _readline(self) -> str | None:
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                raw = bytes(buffer[:end])
                del buffer[: end + 1]
                return raw.decode("utf-8", "replace").removesuffix("\r")
            if self._eof or len(buffer) >= MAX_INPUT_LINE_BYTES:
                if not buffer:
                    return None
                raw = bytes(buffer[:MAX_INPUT_LINE_BYTES])
                del buffer[:MAX_INPUT_LINE_BYTES]
                return raw.decode("utf-8", "replace").removesuffix("\r")
            data = os.read(self._fd, READ_PIPE_BYTES)
            if data:
                buffer += data
            else:
                self._eof = True

    async def receive_line(self) -> str | None:
        """Return the next line, or None at end of file."""
        return await trio.to_thread.run_sync(self._readline, abandon_on_cancel=True)


# --------------------------------------------------------------------------------------
# The interactive terminal: a small line editor behind a lock shared with the output.


class LineEditor:
    """A single-line editor: feed it keystrokes, get finished lines and a redraw string.

    Keys: printable text is inserted; Enter submits; Backspace/Delete; Left/Right,
    Home/End, Ctrl-A/Ctrl-E; Ctrl-U/Ctrl-K kill to start/end; Ctrl-W kills a word; Up and
    Down walk the history; Tab completes the word before the cursor (see
    :attr:`completer`); Ctrl-D on an empty line is end of input. Any other control key
    or escape sequence is ignored, so nothing typed can reach the terminal raw.
    """

    EOF: Final = None  # what :meth:`feed` reports for Ctrl-D on an empty line

    def __init__(self) -> None:
        self.buffer: list[str] = []
        self.cursor = 0
        self._history: deque[str] = deque(maxlen=HISTORY_LINES)
        self._history_pos = 0  # == len(history) when editing a fresh line
        self._draft: list[str] = []
        self._escape = ""  # an escape sequence split across reads
        # Tab: the text before the cursor in, that text completed out (None: no change)
        self.completer: Callable[[str], str | None] | None = None

    @property
    def text(self) -> str:
        """The line typed so far."""
        return "".join(self.buffer)

    def feed(self, keys: str) -> list[str | None]:
        """Apply typed characters; return the lines finished by them (None = Ctrl-D)."""
        done: list[str | None] = []
        for char in keys:
            if self._escape:
                self._escape += char
                if self._escape_complete():
                    self._apply_escape(self._escape)
                    self._escape = ""
                continue
            if char == "\x1b":
                self._escape = char
            elif char in "\r\n":
                done.append(self._submit())
            elif char == "\x04":
                if self.buffer:
                    self._delete_at_cursor()
                else:
                    done.append(self.EOF)
            elif char in "\x7f\x08":
                if self.cursor:
                    self.cursor -= 1
                    del self.buffer[self.cursor]
            elif char == "\x01":
                self.cursor = 0
            elif char == "\x05":
                self.cursor = len(self.buffer)
            elif char == "\x02":
                self.cursor = max(0, self.cursor - 1)
            elif char == "\x06":
                self.cursor = min(len(self.buffer), self.cursor + 1)
            elif char == "\x15":
                del self.buffer[: self.cursor]
                self.cursor = 0
            elif char == "\x0b":
                del self.buffer[self.cursor :]
            elif char == "\x17":
                self._kill_word()
            elif char == "\t":
                self._complete()
            elif char.isprintable():
                self.buffer.insert(self.cursor, char)
                self.cursor += 1
            # everything else (other control keys) is ignored
        return done

    def _submit(self) -> str:
        line = self.text
        if line.strip() and (not self._history or self._history[-1] != line):
            self._history.append(line)
        self._history_pos = len(self._history)
        self.buffer = []
        self.cursor = 0
        return line

    def _complete(self) -> None:
        if self.completer is None:
            return
        done = self.completer(self.text[: self.cursor])
        if done is not None:
            self.buffer = [*done, *self.buffer[self.cursor :]]
            self.cursor = len(done)

    def _delete_at_cursor(self) -> None:
        if self.cursor < len(self.buffer):
            del self.buffer[self.cursor]

    def _kill_word(self) -> None:
        start = self.cursor
        while start and self.buffer[start - 1] == " ":
            start -= 1
        while start and self.buffer[start - 1] != " ":
            start -= 1
        del self.buffer[start : self.cursor]
        self.cursor = start

    def _escape_complete(self) -> bool:
        seq = self._escape
        if len(seq) < 2:
            return False
        if seq[1] == "[":  # CSI: parameters, then a final byte in @..~
            return len(seq) > 2 and "\x40" <= seq[-1] <= "\x7e"
        if seq[1] == "O":  # SS3: one more character (application-mode arrows)
            return len(seq) > 2
        return True  # Alt+key: two characters, ignored

    def _apply_escape(self, seq: str) -> None:
        key = seq[2:] if seq[1] in "[O" else ""
        if key in ("D",):
            self.cursor = max(0, self.cursor - 1)
        elif key in ("C",):
            self.cursor = min(len(self.buffer), self.cursor + 1)
        elif key in ("H", "1~", "7~"):
            self.cursor = 0
        elif key in ("F", "4~", "8~"):
            self.cursor = len(self.buffer)
        elif key == "3~":
            self._delete_at_cursor()
        elif key in ("A", "B"):
            self._walk_history(-1 if key == "A" else 1)

    def _walk_history(self, step: int) -> None:
        pos = self._history_pos + step
        if not 0 <= pos <= len(self._history):
            return
        if self._history_pos == len(self._history):
            self._draft = self.buffer
        self._history_pos = pos
        self.buffer = list(self._history[pos]) if pos < len(self._history) else self._draft
        self.cursor = len(self.buffer)

    def render(self, prompt: str, width: int) -> str:
        """The characters that redraw the prompt and the typed text on the current line.

        A line wider than the terminal scrolls sideways around the cursor instead of
        wrapping, so clearing one screen line always erases all of it.
        """
        room = max(1, width - cell_len(prompt) - 1)
        start = 0
        while cell_len(self.text[start : self.cursor]) > room:
            start += 1
        end = self.cursor
        while end < len(self.buffer) and cell_len(self.text[start : end + 1]) <= room:
            end += 1
        column = cell_len(prompt) + cell_len(self.text[start : self.cursor])
        move = f"\r\x1b[{column}C" if column else "\r"
        return f"{CLEAR_LINE}{prompt}{self.text[start:end]}{move}"


class Terminal:
    """The interactive terminal: a line editor on stdin and a guarded stdout.

    The terminal is put in cbreak mode (no echo, no line buffering, but Ctrl-C still
    interrupts) for the lifetime of the ``with`` block and restored afterwards, even if
    the editor thread is still blocked in a read when the client exits.
    """

    def __init__(self, prompt: str = "> ", *, infd: int = 0, out: IO[str] | None = None) -> None:
        self.prompt = prompt
        self._infd = infd
        self._out = out if out is not None else sys.stdout
        self._editor = LineEditor()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()  # shared by the editor thread and the trio thread
        self._pending: deque[str | None] = deque()
        self._saved_mode: list[Any] | None = None

    def __enter__(self) -> Terminal:
        import termios
        import tty

        self._saved_mode = termios.tcgetattr(self._infd)
        tty.setcbreak(self._infd, termios.TCSANOW)
        self._draw()
        return self

    def __exit__(self, *exc_info: object) -> None:
        import termios

        with self._lock:
            self._out.write(CLEAR_LINE)
            self._out.flush()
        if self._saved_mode is not None:
            termios.tcsetattr(self._infd, termios.TCSADRAIN, self._saved_mode)

    def set_completer(self, completer: Callable[[str], str | None]) -> None:
        """What Tab does: the text before the cursor in, that text completed out."""
        self._editor.completer = completer

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The terminal as it was before (echo off is then up to the caller, e.g.
        ``getpass``), for a prompt that must not go through the line editor: what is
        typed there is never shown and never kept for the up arrow."""
        import termios
        import tty

        with self._lock:
            self._out.write(CLEAR_LINE)
            self._out.flush()
            if self._saved_mode is not None:
                termios.tcsetattr(self._infd, termios.TCSADRAIN, self._saved_mode)
        try:
            yield
        finally:
            tty.setcbreak(self._infd, termios.TCSANOW)
            with self._lock:
                self._draw()

    def set_prompt(self, prompt: str) -> None:
        """Change the prompt (the client shows the current name in it)."""
        with self._lock:
            self.prompt = prompt
            self._draw()

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Print output above the line being typed, then redraw that line below it."""
        with self._lock:
            self._out.write(CLEAR_LINE)
            self._out.flush()
            try:
                yield
            finally:
                self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size().columns
        self._out.write(self._editor.render(self.prompt, width))
        self._out.flush()

    def _next_line(self) -> str | None:
        """Worker thread: read keys until a line is finished (or input ends)."""
        while not self._pending:
            try:
                data = os.read(self._infd, READ_CHUNK_BYTES)
            except OSError:
                data = b""
            keys = self._decoder.decode(data, final=not data)
            with self._lock:
                self._pending.extend(self._editor.feed(keys) if data else [None])
                self._draw()
        return self._pending.popleft()

    async def receive_line(self) -> str | None:
        """Return the next line the person submits, or None at Ctrl-D."""
        return await trio.to_thread.run_sync(self._next_line, abandon_on_cancel=True)
