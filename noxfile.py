"""Developer tasks: ``nox -s lint typecheck tests`` is what CI runs.

Every session forwards ``session.posargs``, so ``nox -s tests -- -k room -x`` works.
Dependencies live in ``pyproject.toml`` ``[dependency-groups]``; nothing is pinned here.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

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


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest-trio, virtual time, loopback only)."""
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
