#!/usr/bin/env bash
# The README's first command: make .venv, install, open the dashboard on the bundled sample.
# Listens on 127.0.0.1 only (see .streamlit/config.toml); pass --server.address to change it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r requirements.txt
exec python -m ui.serve "$@"  # streamlit run app.py (ui/serve.py says what it adds)
