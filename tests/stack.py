"""``citywall up`` as a subprocess for the end-to-end tests: started on a config with ``--port 0``, read until its
banner is complete, killed afterwards (its own children die with it)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_up(config: Path, tmp: Path, *, timeout: float = 120) -> Generator[dict[str, Any], None, None]:
    """Yields ``{url, proc, started, stderr, banner}`` once the stack prints its wall address and "Ctrl-C"."""
    stderr = tmp / "stderr.log"
    with open(stderr, "wb") as err:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "citywall.cli", "up", "--config", str(config), "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
        )
    url = None
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"wall:\s+(http://\S+)/wall", line)
        if m:
            url = m.group(1)
        if url and "Ctrl-C" in line:
            break
    if url is None:
        proc.kill()
        raise AssertionError("stack did not start:\n" + "".join(lines) + stderr.read_text()[-4000:])
    yield {"url": url, "proc": proc, "started": time.monotonic(), "stderr": stderr, "banner": "".join(lines)}
    if proc.poll() is None:
        proc.kill()
        proc.wait()
