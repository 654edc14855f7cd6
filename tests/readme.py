"""The README's Python snippets, found by a line they contain, so a test runs exactly what a reader copies."""

from __future__ import annotations

import re
from typing import Any

from tests.support import REPO

BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def snippet(marker: str) -> str:
    """The one ```python block of README.md that contains `marker`."""
    blocks = [b for b in BLOCK.findall((REPO / "README.md").read_text()) if marker in b]
    assert len(blocks) == 1, f"{len(blocks)} README snippets contain {marker!r}"
    return str(blocks[0])


def run_snippet(marker: str) -> dict[str, Any]:
    """Execute the snippet (ASKTELL_URL names the server) and return its variables."""
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(snippet(marker), f"README.md ({marker})", "exec"), namespace)
    return namespace
