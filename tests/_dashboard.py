"""The dashboard as scripts/dashboard.sh starts it (``ui.serve``: ``streamlit run app.py``), with the Overview's
demo capped at N epochs per model: the browser test and scripts/screenshots.py start it so. (In one process a
test replaces ``config.DEMO`` itself, e.g. with pytest's monkeypatch; a server is another process, hence this
launcher.)

    python tests/_dashboard.py N [streamlit run options]      N = 0: the demo's own settings
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill_core import config  # noqa: E402
from ui import serve  # noqa: E402


def cap_demo(epochs: int) -> None:
    """``config.DEMO`` with at most ``epochs`` epochs per model (the pages read it when they run)."""
    d = config.DEMO
    config.DEMO = replace(d, teacher_train=replace(d.teacher_train, epochs=min(d.teacher_train.epochs, epochs)),
                          student_train=replace(d.student_train, epochs=min(d.student_train.epochs, epochs)))


if __name__ == "__main__":
    if epochs := int(sys.argv[1]):
        cap_demo(epochs)
    sys.exit(serve.main(sys.argv[2:]))
