"""Developer tasks: ``nox -s lint typecheck tests`` is what CI runs.

Every session forwards ``session.posargs``, so ``nox -s tests -- -k room -x`` works.
Dependencies live in ``pyproject.toml`` ``[dependency-groups]``; nothing is pinned here.
``tests`` runs once per supported Python that this machine can run; the others are
named as skipped, so a machine with one Python still passes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

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


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks against the reference servers and print the figures."""
    session.install("-e", ".", *_group("bench"))
    session.run("python", "scripts/bench.py", *session.posargs)
