"""The README's "Use it from Python" example runs as printed, against the installed package.

It runs in a fresh interpreter in an empty folder, so it sees ``distill_core`` as a reader would after
``pip install``: neither the checkout's sys.path nor its working directory helps it find the package or the sample.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SECTION = "## Use it from Python"
LINE = re.compile(r"^(teacher|distilled|plain) +[\d,]+ params  test NDCG@10 (\d\.\d{4})$")


def readme_example(text: str) -> str:
    """The first ```python block of the README's "Use it from Python" section."""
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"README.md's {SECTION!r} section has no ```python block"
    return blocks[0]


def test_readme_example_trains_teacher_distilled_and_plain(tmp_path: Path) -> None:
    code = readme_example((ROOT / "README.md").read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    hint = " (install the package first: pip install -e . ; scripts/test.sh does)" \
        if "No module named 'distill_core'" in proc.stderr else ""
    assert proc.returncode == 0, f"the README example failed{hint}:\n{proc.stderr[-3000:]}"
    lines = proc.stdout.strip().splitlines()
    found = [LINE.match(line) for line in lines]
    assert all(found) and [m.group(1) for m in found] == ["teacher", "distilled", "plain"], proc.stdout
    ndcg = [float(m.group(2)) for m in found]
    assert all(0 < x <= 1 for x in ndcg), ndcg  # three models that learned something on the sample
