"""The README's quick start (its first ```python block) runs against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no ```python block"
    return blocks[0]


def test_readme_starts_with_install_and_a_short_quick_start():
    text = README.read_text()
    assert text.index("pip install ./sdk/python") < text.index("```python")
    lines = [l for l in quick_start().splitlines() if l.strip()]
    assert 3 <= len(lines) <= 6, lines


def test_quick_start_runs(server, tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(quick_start())
    env = dict(os.environ, AGENTDB_URL=f"http://{server.url}", AGENTDB_API_KEY=server.admin_key)
    # Run from an empty folder so `import agentdb` is the installed package.
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "a"
