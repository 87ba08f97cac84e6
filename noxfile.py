"""Developer tasks: ``nox -s lint typecheck tests`` is what CI runs (and ``irctest``).

Every session forwards ``session.posargs``, so ``nox -s tests -- -k room -x`` works.
Dependencies live in ``pyproject.toml`` ``[dependency-groups]``; nothing is pinned here.
``tests`` runs once per supported Python that this machine can run; the others are
named as skipped, so a machine with one Python still passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


def _runs(version: str) -> bool:
    """True if ``pythonX.Y`` is on PATH and really starts.

    A version manager's shim can be on PATH for a version it will not run; nox would
    then fail the session instead of skipping it, so each candidate is tried once.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return True
    command = shutil.which(f"python{version}")
    if command is None:
        return False
    try:
        done = subprocess.run([command, "-c", ""], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


PYTHONS = [version for version in SUPPORTED_PYTHONS if _runs(version)]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _group(name: str) -> list[str]:
    """Flatten one ``[dependency-groups]`` entry, following ``include-group``."""
    out: list[str] = []
    for item in PYPROJECT["dependency-groups"][name]:
        if isinstance(item, dict):
            out.extend(_group(item["include-group"]))
        else:
            out.append(item)
    return out


@nox.session(python=PYTHONS or None)  # None: the running Python, if none is supported
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest-trio, virtual time, loopback only) on each Python."""
    missing = [version for version in SUPPORTED_PYTHONS if version not in PYTHONS]
    if missing:
        session.log(f"not on this machine, so not tested: Python {', '.join(missing)}")
    session.install("-e", ".", *_group("test"))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (no files are changed)."""
    session.install(*_group("lint"))
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package, tests and scripts with mypy --strict."""
    session.install("-e", ".", *_group("typecheck"), *_group("bench"))
    session.run("mypy", *session.posargs)


# The IRC conformance gate (progval/irctest, from a checkout named by IRCTEST_DIR): the RFC
# subset, where every selected test not in tests/irctest/skips.txt must pass, and the
# IRCv3 set, where at least half must.
IRCTEST_RFC: Final = [
    "connection_registration",
    "pingpong",
    "join",
    "part",
    "messages",
    "names",
    "topic",
    "quit",
    "kick",
    "list",
    "whois",
    "who",
    "regressions",
    "lusers",
    "away",
    "buffering",
    "isupport",
]
IRCTEST_RFC_MARKERS: Final = (
    "not IRCv3 and not deprecated and not strict and not services and not implementation-specific"
)
IRCTEST_IRCV3: Final = ["cap", "echo_message", "message_tags", "sasl", "chathistory", "utf8"]
IRCTEST_IRCV3_MARKERS: Final = "not deprecated and not strict and not implementation-specific"
IRCTEST_IRCV3_FLOOR: Final = "0.5"
IRCTEST_TIMEOUT: Final = "60"  # seconds per test: one the server leaves unanswered fails


@nox.session
def irctest(session: nox.Session) -> None:
    """Run the IRC conformance suite against ``triochat server --irc-port``.

    The suite is not vendored in this repository: set ``IRCTEST_DIR`` to a checkout of
    progval/irctest. Without it the session says so and passes. Arguments after ``--``
    go to both pytest runs (``nox -s irctest -- -k Join -x``).
    """
    suite = os.environ.get("IRCTEST_DIR")
    if not suite:
        session.log("IRCTEST_DIR is not set: no irctest checkout, so no conformance run")
        return
    root = Path(suite).resolve()
    if not (root / "irctest" / "server_tests").is_dir():
        session.error(f"IRCTEST_DIR={suite} is not an irctest checkout (no irctest/server_tests)")
    session.install("-e", ".", *_group("irctest"))
    env = {
        "PYTHONPATH": str(Path(__file__).resolve().parent),  # tests.irctest.controller
        "PYTHONDONTWRITEBYTECODE": "1",  # leave the checkout as it was
    }
    common = [
        "python",
        "-m",
        "pytest",
        "--controller",
        "tests.irctest.controller",
        "-p",
        "tests.irctest.plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfEs",
        "--timeout",
        IRCTEST_TIMEOUT,
    ]
    # With a filter in posargs a set may select nothing (pytest's exit code 5): not a failure.
    codes = [0, 5] if session.posargs else [0]
    rfc = [f"irctest/server_tests/{name}.py" for name in IRCTEST_RFC]
    ircv3 = [f"irctest/server_tests/{name}.py" for name in IRCTEST_IRCV3]
    runs = (
        ("the RFC subset: every test not in tests/irctest/skips.txt", IRCTEST_RFC_MARKERS, rfc),
        (
            f"the IRCv3 set: at least {float(IRCTEST_IRCV3_FLOOR):.0%} pass",
            IRCTEST_IRCV3_MARKERS,
            ["--min-passed", IRCTEST_IRCV3_FLOOR, *ircv3],
        ),
    )
    failed: list[str] = []
    with session.chdir(root):
        for title, markers, args in runs:
            session.log(f"irctest, {title}")
            try:  # both sets run, whatever the first gives
                session.run(
                    *common, "-m", markers, *args, *session.posargs, env=env, success_codes=codes
                )
            except nox.command.CommandFailed:
                failed.append(title.split(":", 1)[0])
    if failed:
        session.error(f"irctest: {' and '.join(failed)} failed")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks against the reference servers and print the figures.

    Arguments after ``--`` go to scripts/bench.py. A run without them also measures
    what an IRC member costs in fan-out beside a plain one (scripts/irc_fanout.py)
    and what scraping ``/metrics`` every second costs at 1000 members, drawing the
    fan-out latency histogram (scripts/scrape_cost.py, docs/fanout-latency.svg).
    """
    session.install("-e", ".", *_group("bench"))
    session.run("python", "scripts/bench.py", *session.posargs)
    if not session.posargs:
        session.run("python", "scripts/irc_fanout.py")
        session.run("python", "scripts/scrape_cost.py", "--svg", "docs/fanout-latency.svg")
