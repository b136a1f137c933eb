"""``python -m ui.serve [streamlit run options]``: ``streamlit run app.py``, with Streamlit told before its first
session that app.py navigates by ``st.navigation`` (what scripts/dashboard.sh runs).

Streamlit 1.67 looks for a ``pages/`` folder next to the main script when its first session starts and runs
that session's first script run in its legacy multipage mode until ``st.navigation`` switches the mode off for
the process. The product card's ``pages/`` holds no scripts (pages/README.md says why), so the first visit to a
page's own URL after a start (a bookmark, or a browser tab that reconnects after a restart) opened a "Page not
found" dialog over that page. Setting the mode off first is what ``st.navigation`` itself does
(``PagesManager.uses_pages_directory = False``).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def navigation_only() -> None:
    """Streamlit's legacy ``pages/`` mode off for this process (before any session starts). A Streamlit without
    that class (a later version) starts as it is: at worst with the dialog once."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    PagesManager.uses_pages_directory = False


def main(argv: list[str]) -> int:
    from streamlit.web import cli

    navigation_only()
    return cli.main(["run", str(ROOT / "app.py"), *argv], prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
