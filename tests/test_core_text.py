"""Framing and input hygiene: LineBuffer, sanitise/decode_line, and name rules."""

from __future__ import annotations

import itertools
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.deadlines import CPU_DEADLINE
from triochat.core.framing import MAX_LINE_BYTES, TOO_LONG, LineBuffer, LineTooLong
from triochat.core.hygiene import decode_line, has_visible, sanitise
from triochat.core.names import MAX_NAME_CHARS, name_error, name_key

# Bidi embedding/override/isolate marks, LRM/RLM/ALM and the Unicode line separators:
# everything that can reorder or break what a reader sees (Trojan Source).
BIDI_AND_SEPARATORS = (
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c", "\u2028", "\u2029"]
)

Line = bytes | LineTooLong


def drain(buffer: LineBuffer) -> list[Line]:
    """Pull every complete line the buffer holds."""
    lines: list[Line] = []
    while (line := buffer.next_line()) is not None:
        lines.append(line)
    return lines


def feed_chunks(chunks: list[bytes], max_line_bytes: int) -> tuple[list[Line], Line | None]:
    """Feed ``chunks`` one by one; return every line pulled and what close() gives."""
    buffer = LineBuffer(max_line_bytes)
    lines: list[Line] = []
    for chunk in chunks:
        buffer.feed(chunk)
        lines += drain(buffer)
    return lines, buffer.close()


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# Streams made mostly of a few interesting bytes, so lines, CRs and overlong runs are
# all common at a small limit.
streams = st.lists(
    st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"xyz", b"\xff", b"\x00"]), max_size=60
).map(b"".join) | st.binary(max_size=80)


# --- LineBuffer -------------------------------------------------------------------------


def test_linebuffer_lf_lines() -> None:
    """LF-terminated lines come out without their line end, in order."""
    buffer = LineBuffer()
    buffer.feed(b"hello\nworld\n")
    assert drain(buffer) == [b"hello", b"world"]


def test_linebuffer_crlf_lines() -> None:
    """A CR just before the LF is dropped (telnet sends CRLF)."""
    buffer = LineBuffer()
    buffer.feed(b"hello\r\nworld\r\n")
    assert drain(buffer) == [b"hello", b"world"]


def test_linebuffer_only_one_cr_dropped() -> None:
    """Only the single CR of a CRLF is removed; an earlier CR stays in the line."""
    buffer = LineBuffer()
    buffer.feed(b"a\r\r\nb\rc\n")
    assert drain(buffer) == [b"a\r", b"b\rc"]


def test_linebuffer_empty_lines_kept() -> None:
    """Empty lines are framed as empty (ignoring them is the parser's job)."""
    buffer = LineBuffer()
    buffer.feed(b"\n\r\nx\n")
    assert drain(buffer) == [b"", b"", b"x"]


def test_linebuffer_several_lines_per_chunk_and_len() -> None:
    """One chunk with several lines queues them all; len() counts the queued lines."""
    buffer = LineBuffer()
    buffer.feed(b"one\ntwo\nthree\npart")
    assert len(buffer) == 3
    assert buffer.next_line() == b"one"
    assert len(buffer) == 2
    assert drain(buffer) == [b"two", b"three"]
    assert buffer.next_line() is None
    assert buffer.partial_bytes == 4


def test_linebuffer_line_split_across_chunks() -> None:
    """A line arriving in pieces is joined; nothing is yielded until its newline."""
    buffer = LineBuffer()
    buffer.feed(b"hel")
    assert buffer.next_line() is None
    assert buffer.partial_bytes == 3
    buffer.feed(b"lo wor")
    assert buffer.next_line() is None
    buffer.feed(b"ld\r")
    assert buffer.next_line() is None
    buffer.feed(b"\nnext")
    assert drain(buffer) == [b"hello world"]
    assert buffer.partial_bytes == 4


def test_linebuffer_one_byte_trickle() -> None:
    """Feeding one byte at a time yields the same lines as one feed."""
    data = b"first\r\nsecond\n\nthird\n"
    buffer = LineBuffer()
    lines: list[Line] = []
    for i in range(len(data)):
        buffer.feed(data[i : i + 1])
        lines += drain(buffer)
    assert lines == [b"first", b"second", b"", b"third"]


def test_linebuffer_exactly_max_line_bytes_is_accepted() -> None:
    """A line of exactly max_line_bytes (plus CRLF, split before the LF) is not too long."""
    buffer = LineBuffer(8)
    buffer.feed(b"12345678\r")
    buffer.feed(b"\n")
    buffer.feed(b"abcdefgh\n")
    assert drain(buffer) == [b"12345678", b"abcdefgh"]


def test_linebuffer_overlong_complete_line_then_next_line_works() -> None:
    """A whole overlong line in one chunk gives exactly one TOO_LONG; the next line is fine."""
    buffer = LineBuffer(8)
    buffer.feed(b"123456789\nok\n")
    assert drain(buffer) == [TOO_LONG, b"ok"]


def test_linebuffer_overlong_line_by_max_plus_one_with_cr() -> None:
    """max+1 bytes before CRLF is too long even though the CR gives one byte of slack."""
    buffer = LineBuffer(4)
    buffer.feed(b"abcde")
    buffer.feed(b"\r")
    buffer.feed(b"\nok\n")
    assert drain(buffer) == [TOO_LONG, b"ok"]


def test_linebuffer_overlong_line_trickled_yields_one_too_long() -> None:
    """An overlong line in many small chunks gives one TOO_LONG, early, and nothing more."""
    buffer = LineBuffer(16)
    seen: list[Line] = []
    for _ in range(1000):
        buffer.feed(b"xyz")
        seen += drain(buffer)
        assert buffer.partial_bytes <= 17
    # Reported as soon as it crossed the limit, not only at the newline.
    assert seen == [TOO_LONG]
    buffer.feed(b"tail\r\nnext line\n")
    assert drain(buffer) == [b"next line"]
    assert buffer.partial_bytes == 0


def test_linebuffer_overlong_default_limit() -> None:
    """The default limit is MAX_LINE_BYTES: one byte more is TOO_LONG."""
    buffer = LineBuffer()
    buffer.feed(b"a" * MAX_LINE_BYTES + b"\n" + b"b" * (MAX_LINE_BYTES + 1) + b"\nc\n")
    assert drain(buffer) == [b"a" * MAX_LINE_BYTES, TOO_LONG, b"c"]


def test_linebuffer_too_long_marker_identity_and_repr() -> None:
    """TOO_LONG is a LineTooLong singleton that prints as TOO_LONG and is never bytes."""
    buffer = LineBuffer(2)
    buffer.feed(b"abcd\n")
    marker = buffer.next_line()
    assert marker is TOO_LONG
    assert isinstance(marker, LineTooLong)
    assert repr(marker) == "TOO_LONG"


def test_linebuffer_rejects_nonpositive_limit() -> None:
    """A limit below one byte is a configuration error, not a buffer that drops everything."""
    with pytest.raises(ValueError, match="at least 1"):
        LineBuffer(0)


def test_linebuffer_bytearray_input() -> None:
    """bytearray chunks are accepted and yield bytes lines, unaffected by later mutation."""
    buffer = LineBuffer()
    chunk = bytearray(b"abc\nde")
    buffer.feed(chunk)
    chunk[:] = b"ZZZZZZ"
    buffer.feed(bytearray(b"f\n"))
    lines = drain(buffer)
    assert lines == [b"abc", b"def"]
    assert all(type(line) is bytes for line in lines)


def test_linebuffer_close_returns_unterminated_line() -> None:
    """close() hands back the last line when the peer did not end it with a newline."""
    buffer = LineBuffer()
    buffer.feed(b"done\nbye")
    assert drain(buffer) == [b"done"]
    assert buffer.close() == b"bye"
    assert buffer.partial_bytes == 0


def test_linebuffer_close_strips_trailing_cr() -> None:
    """An unterminated last line loses a trailing CR like a terminated one."""
    buffer = LineBuffer()
    buffer.feed(b"bye\r")
    assert buffer.close() == b"bye"


def test_linebuffer_close_none_without_partial_line() -> None:
    """close() gives None when the stream ended cleanly on a newline (or was empty)."""
    buffer = LineBuffer()
    assert buffer.close() is None
    buffer.feed(b"line\n")
    assert buffer.close() is None
    buffer = LineBuffer()
    buffer.feed(b"\r")
    assert buffer.close() is None


def test_linebuffer_close_none_while_discarding() -> None:
    """close() in the middle of an overlong line gives None, not its tail."""
    buffer = LineBuffer(4)
    buffer.feed(b"abcdefghij")
    assert drain(buffer) == [TOO_LONG]
    buffer.feed(b"klm")
    assert buffer.close() is None
    assert buffer.partial_bytes == 0


def test_linebuffer_close_never_returns_overlong_line() -> None:
    """close() never returns more than max_line_bytes: max+1 bytes is TOO_LONG, not a line."""
    buffer = LineBuffer(4)
    buffer.feed(b"abcde")  # max + 1 bytes, no newline: held as the possible "abcd\r"
    assert drain(buffer) == []
    assert buffer.close() is TOO_LONG


def test_linebuffer_close_reports_line_one_past_limit_once() -> None:
    """An unterminated line one byte over the limit at EOF was dropped without an error."""
    buffer = LineBuffer(4)
    buffer.feed(b"ok\nabcde")
    assert drain(buffer) == [b"ok"]
    assert buffer.close() is TOO_LONG
    assert buffer.close() is None


@settings(max_examples=150, deadline=CPU_DEADLINE)
@given(
    chunks=st.lists(st.binary(max_size=40) | streams, max_size=20),
    max_line_bytes=st.integers(1, 16),
)
def test_linebuffer_partial_bytes_bounded(chunks: list[bytes], max_line_bytes: int) -> None:
    """Whatever is fed, at most max_line_bytes + 1 bytes of a partial line are held."""
    buffer = LineBuffer(max_line_bytes)
    for chunk in chunks:
        buffer.feed(chunk)
        assert buffer.partial_bytes <= max_line_bytes + 1
        drain(buffer)


@settings(max_examples=200, deadline=CPU_DEADLINE)
@given(
    data=streams,
    cuts=st.lists(st.integers(0, 80), max_size=12),
    max_line_bytes=st.integers(1, 12),
)
def test_linebuffer_chunking_does_not_matter(
    data: bytes, cuts: list[int], max_line_bytes: int
) -> None:
    """Any split of a byte stream into chunks yields the same lines as feeding it whole."""
    whole = feed_chunks([data], max_line_bytes)
    assert feed_chunks(split_at(data, cuts), max_line_bytes) == whole
    assert feed_chunks([data[i : i + 1] for i in range(len(data))], max_line_bytes) == whole


@settings(max_examples=150, deadline=CPU_DEADLINE)
@given(data=streams, max_line_bytes=st.integers(1, 12))
def test_linebuffer_matches_reference_split(data: bytes, max_line_bytes: int) -> None:
    """Terminated lines equal split-on-LF, minus one CR, with TOO_LONG over the limit."""
    expected: list[Line] = []
    for raw in data.split(b"\n")[:-1]:
        line = raw.removesuffix(b"\r")
        expected.append(TOO_LONG if len(line) > max_line_bytes else line)
    buffer = LineBuffer(max_line_bytes)
    buffer.feed(data)
    lines = drain(buffer)
    tail = data.rsplit(b"\n", 1)[-1] if b"\n" in data else data
    if len(tail) > max_line_bytes + 1:  # an overlong unterminated tail is reported early
        expected.append(TOO_LONG)
    assert lines == expected


# --- sanitise / decode_line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b[2Jhello", "hello"),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("\x1b[1;31;42mx", "x"),
        ("a\x1b[2;5Hb", "ab"),
        ("\x1b]0;pwned\x07hi", "hi"),
        ("\x1b]0;pwned\x1b\\hi", "hi"),
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("\x9b2Jhi", "hi"),
        ("\x9b1Aup", "up"),
        ("a\rb", "ab"),
        ("a\x08\x08b", "ab"),
        ("bell\x07!", "bell!"),
        ("nul\x00!", "nul!"),
        ("del\x7f!", "del!"),
        ("c1\x85\x8d\x9c!", "c1!"),
        ("ff\x0cvt\x0b", "ffvt"),
        ("line\nfeed", "linefeed"),
    ],
)
def test_sanitise_strips_escapes_and_controls(raw: str, clean: str) -> None:
    """ANSI CSI/OSC (7- and 8-bit), C0 (not tab), DEL, C1 and bare CR are removed."""
    assert sanitise(raw) == clean


@pytest.mark.parametrize("mark", BIDI_AND_SEPARATORS)
def test_sanitise_strips_bidi_and_separators(mark: str) -> None:
    """Bidi overrides/isolates, LRM/RLM/ALM and U+2028/9 are removed (Trojan Source)."""
    assert sanitise(f"abc{mark}def{mark}") == "abcdef"


@pytest.mark.parametrize(
    "text",
    [
        "tab\tkept",
        "emoji \U0001f600\U0001f44d\U0001f3fd",
        "CJK \u4f60\u597d\u4e16\u754c",
        "accents caf\u00e9 na\u00efve \u00c5ngstr\u00f6m",
        "markup-looking [bold]not bold[/bold] and :smile:",
        "punctuation !@#$%^&*()_+-={}|;':\",./<>? ~`",
        "arabic \u0645\u0631\u062d\u0628\u0627 hebrew \u05e9\u05dc\u05d5\u05dd",
        "   spaces are kept   ",
    ],
)
def test_sanitise_keeps_printable_text(text: str) -> None:
    """Tab, emoji, non-Latin scripts, accents and markup-like punctuation pass unchanged."""
    assert sanitise(text) == text


def test_sanitise_keeps_text_around_escapes() -> None:
    """Removing an escape keeps the visible text on both sides, including tabs."""
    assert sanitise("a\tb\x1b[2Jc\u202ed\U0001f600") == "a\tbcd\U0001f600"


def test_decode_line_invalid_utf8_becomes_replacement_char() -> None:
    """Invalid UTF-8 bytes decode to U+FFFD instead of raising."""
    assert decode_line(b"ok \xff\xfe end") == "ok \ufffd\ufffd end"
    assert decode_line(b"\xc3") == "\ufffd"


def test_decode_line_utf8_text_and_sanitised() -> None:
    """Valid UTF-8 decodes intact, and the result is sanitised (UTF-8 encoded C1 CSI too)."""
    assert decode_line("caf\u00e9 \U0001f600".encode()) == "caf\u00e9 \U0001f600"
    assert decode_line(b"\x1b[2J\x1b]0;pwned\x07hi\r") == "hi"
    assert decode_line(b"\xc2\x9b2Jhi") == "hi"
    assert decode_line("x\u202ey".encode()) == "xy"


def _unsafe(ch: str) -> bool:
    return (unicodedata.category(ch) == "Cc" and ch != "\t") or ch in BIDI_AND_SEPARATORS


@settings(max_examples=300, deadline=CPU_DEADLINE)
@given(st.text())
def test_sanitise_output_is_inert(text: str) -> None:
    """No control character but tab, no ESC and no bidi mark survives sanitise."""
    clean = sanitise(text)
    assert "\x1b" not in clean
    assert not [ch for ch in clean if _unsafe(ch)]


hostile_text = st.lists(
    st.sampled_from(["\x1b", "[", "]", "\x9b", "\x07", "\\", "0;", "2J", "a", "\t", "\x00"])
    | st.sampled_from(BIDI_AND_SEPARATORS)
    | st.text(max_size=5),
    max_size=20,
).map("".join)


@settings(max_examples=300, deadline=CPU_DEADLINE)
@given(st.text() | hostile_text)
def test_sanitise_idempotent(text: str) -> None:
    """sanitise(sanitise(x)) == sanitise(x): nothing unsafe is assembled by the removal."""
    once = sanitise(text)
    assert sanitise(once) == once
    assert not [ch for ch in once if _unsafe(ch)]


@settings(max_examples=200, deadline=CPU_DEADLINE)
@given(st.binary(max_size=60))
def test_decode_line_any_bytes_is_inert(raw: bytes) -> None:
    """Any received bytes decode without error to encodable, inert text."""
    text = decode_line(raw)
    text.encode("utf-8")  # never a lone surrogate
    assert not [ch for ch in text if _unsafe(ch)]


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "Z", "7", "_", "alice", "Bob_2", "first.last", "x-y", "a" * MAX_NAME_CHARS],
)
def test_name_error_valid(name: str) -> None:
    """Names of 1..24 characters from A-Z a-z 0-9 _ . - are accepted."""
    assert name_error(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "at least one"),
        ("a" * (MAX_NAME_CHARS + 1), "at most 24"),
        ("alice bob", "only letters"),
        ("caf\u00e9", "only letters"),
        ("\u0430lice", "only letters"),  # Cyrillic a: a look-alike impostor
        ("\uff41lice", "only letters"),  # fullwidth a
        ("alice@home", "only letters"),
        ("alice\n", "only letters"),
        ("tab\tname", "only letters"),
        ("\x1b[31m", "only letters"),
    ],
)
def test_name_error_invalid(name: str, reason: str) -> None:
    """Empty, too long, spaces, non-ASCII letters and symbols are refused with a reason."""
    error = name_error(name)
    assert error is not None
    assert reason in error


def test_name_key_case_insensitive() -> None:
    """Names differing only in case share a key; different names do not."""
    assert name_key("Alice") == name_key("ALICE") == name_key("alice")
    assert name_key("alice") != name_key("alice_")
    assert name_key("Bob.Smith-2") == name_key("bob.smith-2")


@pytest.mark.parametrize(
    ("name", "lookalike"),
    [
        ("alice", "aIice"),  # capital I for l
        ("alice", "a1ice"),
        ("alice", "AL1CE"),
        ("bob", "b0b"),
        ("BOB", "b0B"),
        ("emma", "ernrna"),  # rn for m
        ("Ian", "lan"),
    ],
)
def test_name_key_confusables_collide(name: str, lookalike: str) -> None:
    """`/nick aIice` was accepted while alice was online: lookalikes share a key."""
    assert name_key(name) == name_key(lookalike)


def test_name_key_follows_unicode_confusables_table() -> None:
    """Every pair the Unicode confusables table (UTS #39) gives within names collides."""
    from confusable_homoglyphs.confusables import confusables_data

    allowed = {c for c in map(chr, range(128)) if name_error(c) is None}
    checked = 0
    for char in sorted(allowed):
        for glyph in confusables_data.get(char, []):
            lookalike = glyph["c"]
            if all(c in allowed for c in lookalike):
                assert name_key(char) == name_key(lookalike), (char, lookalike)
                checked += 1
    assert checked >= 5  # 0/O, 1/l, I/l, l/1, l/I, m/rn: the table was really read


PERSIAN_ZWNJ = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "mi-khaham"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("hi\u200bthere", "hithere"),  # zero width space
        ("\ufeffhello", "hello"),  # byte order mark
        ("a\u3164b", "ab"),  # Hangul filler
        ("flag\U000e0067\U000e0062\U000e007f", "flag"),  # tag characters
        ("soft\u00adhyphen", "softhyphen"),
        ("\u2764\ufe0f", "\u2764\ufe0f"),  # variation selector kept: emoji presentation
        ("\U0001f468\u200d\U0001f469", "\U0001f468\u200d\U0001f469"),  # ZWJ kept
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),
    ],
)
def test_sanitise_strips_default_ignorables_keeps_joiners(text: str, clean: str) -> None:
    """Invisible characters made a message look empty; joiners for scripts/emoji stay."""
    assert sanitise(text) == clean


@pytest.mark.parametrize(
    "text", ["\u200b", "\u3164\u3164", "\ufeff", "\U000e0041", "\u200d", "\u2800 ", "\ufe0f"]
)
def test_has_visible_false_for_invisible_only_text(text: str) -> None:
    """A message made only of invisible characters has nothing visible once sanitised."""
    assert not has_visible(sanitise(text))


@pytest.mark.parametrize("text", ["a", ".", "\u2764\ufe0f", "\u0645", "x\u200b"])
def test_has_visible_true_for_text(text: str) -> None:
    """Anything that shows, however short, is visible."""
    assert has_visible(sanitise(text))
