"""``python -m triochat`` is the ``triochat`` command."""

from triochat.cli import main

raise SystemExit(main())
