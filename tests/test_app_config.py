"""The server's settings (.streamlit/config.toml) and what the README says about them."""
from __future__ import annotations

import tomllib

from conftest import ROOT


def test_upload_size_limit_is_configured():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    limit = cfg["server"]["maxUploadSize"]
    assert isinstance(limit, int) and 1 <= limit <= 1024  # MB; Streamlit refuses larger files itself
    assert "maxUploadSize" in (ROOT / "README.md").read_text()


def test_the_app_listens_on_localhost_with_xsrf_and_the_readme_says_how_to_expose_it():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"].get("enableCORS", True) is True  # XSRF protection needs CORS protection on
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Exposing the dashboard"):]
    assert "127.0.0.1" in section and "--server.address 0.0.0.0" in section and "deliberately" in section


def test_streamlit_does_not_collect_garbage_after_every_live_poll():
    """Streamlit's default full gc after each script run held the GIL 2x a second and slowed training
    under a live page 3x (docs: .streamlit/config.toml); the setting must stay off."""
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["runner"]["postScriptGC"] is False


def test_first_start_on_a_new_machine_does_not_stop_at_streamlits_email_prompt():
    """Found by hand: `bash scripts/dashboard.sh` on a machine without ~/.streamlit/credentials.toml waited
    at an "Email:" prompt instead of serving the dashboard."""
    import tomllib
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["showEmailPrompt"] is False
