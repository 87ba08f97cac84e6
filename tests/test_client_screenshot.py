"""scripts/client_screenshot.py still draws the client's pictures (docs/client-session*.svg)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "client_screenshot.py"


def test_client_screenshot_script_draws_both_themes(tmp_path: Path) -> None:
    """One real session, drawn dark and light: replay, a mention, a private line, /search."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    dark = (tmp_path / "client-session.svg").read_text()
    light = (tmp_path / "client-session-light.svg").read_text()
    for svg in (dark, light):
        for text in ("earlier&#160;messages", "@alice", "review&#160;#142", "found,&#160;newest"):
            assert text in svg
    assert "#292929" in dark  # the dark theme's background
    assert "#fafafa" in light  # the light one's
