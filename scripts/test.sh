#!/usr/bin/env bash
# The README's test command: install into the active venv (or make .venv), run the whole suite.
# pytest's exit code 5 (no tests collected) is a failure here, not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install -q --upgrade pip
# requirements-lm.txt = requirements.txt + the optional text-encoder extra, so the text teacher is tested too;
# requirements-dist.txt adds Ray, so sweeps on Ray are tested too (tests/test_ray_sweep.py fails without it in CI)
python -m pip install -q -r requirements-lm.txt
python -m pip install -q -r requirements-dist.txt
mkdir -p artifacts
set +e
python -m pytest -q -p no:cacheprovider --durations=10 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
