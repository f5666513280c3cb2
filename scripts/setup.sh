#!/usr/bin/env bash
# Create ./.venv and install xlsearch into it (idempotent; a second run takes a second).
# PyTorch goes in first as the pinned CPU build (on this machine's local wheel cache), so that
# the project's torch range is already satisfied and pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
# this machine's pip config lists local indexes that lack some projects; pip says so per project
quiet_pip() { python -m pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }; }
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
stamp=.venv/.xlsearch-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -c "import torch" 2>/dev/null || quiet_pip "torch==2.13.0"
  quiet_pip -e ".[dev,train,milvus,ray]"
  echo "$want" > "$stamp"
fi
