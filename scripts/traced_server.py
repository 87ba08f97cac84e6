"""Run ``triochat server`` with tracemalloc on, for the benchmarks' heap figure.

::

    python scripts/traced_server.py REPORT_FILE [triochat server options ...]

``scripts/bench.py`` starts triochat through this wrapper for its ``*-heap`` runs of
the idle scenarios, and ``scripts/loadgen.py --heap-report REPORT_FILE`` asks for a
reading by sending the server ``SIGUSR1``. The handler runs a full garbage collection
(so cycles waiting for the collector do not count), then appends one line to
``REPORT_FILE``::

    <reading number> <traced bytes> <peak traced bytes> <tracemalloc's own bytes>

"Traced bytes" is every block Python's allocators hand out and have not freed:
objects, frames, buffers, the ``bytes`` a socket read returned. It leaves out the
allocator's free lists and partly used arenas, C libraries' own allocations (SQLite's
page cache, for one) and the kernel's socket buffers: it is the part of RSS that
triochat's Python code decides.

Why a wrapper and not a server flag: the package stays free of debug hooks; this file
only imports ``triochat.cli.main``, so it runs any checkout of triochat (``PYTHONPATH``
chooses which). tracemalloc makes allocation several times slower and its tables take
memory of their own (the fourth number), so a traced run's join time and RSS are not
comparable with an untraced run's; the benchmark reports RSS from separate, untraced
runs.
"""

from __future__ import annotations

import gc
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Final

TRACE_FRAMES: Final[int] = 1  # frames kept per block: sizes are all we need, 1 is cheapest
USAGE: Final[str] = "usage: traced_server.py REPORT_FILE [triochat server options ...]"


def main(argv: list[str]) -> int:
    """Start tracing, install the SIGUSR1 reporter, then run ``triochat server``."""
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    report = Path(argv[0])
    tracemalloc.start(TRACE_FRAMES)
    readings = 0

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes of the event loop, as an
        # automatic collection would; the loop goes on afterwards.
        nonlocal readings
        gc.collect()
        traced, peak = tracemalloc.get_traced_memory()
        own = tracemalloc.get_tracemalloc_memory()
        readings += 1
        with report.open("a", encoding="ascii") as out:
            out.write(f"{readings} {traced} {peak} {own}\n")

    # Installed before trio starts: SIGUSR1 would otherwise end the process.
    signal.signal(signal.SIGUSR1, on_usr1)
    from triochat.cli import main as triochat_main  # imported under tracing, like the rest

    return triochat_main(["server", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
