"""The live progress view tells a finished job's note (a Stop that came too late) to the user."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _script(note: str | None, status: str) -> None:
    import time

    from distill_core.runner import ProgressSnapshot
    from ui import live

    live.progress(ProgressSnapshot("j1", "demo", "Demo", status, started=time.time() - 5, ended=time.time(),
                                   fraction=1.0, note=note))


def test_a_done_job_with_a_late_stop_says_so() -> None:
    note = "Stop came after the last training step had run: the job finished and its runs are stored"
    at = AppTest.from_function(_script, args=(note, "done")).run()
    assert [i.value for i in at.info] == [note] and not at.warning
    at = AppTest.from_function(_script, args=(None, "done")).run()
    assert not at.info and not at.warning
    at = AppTest.from_function(_script, args=(None, "cancelled")).run()
    assert not at.info and len(at.warning) == 1
