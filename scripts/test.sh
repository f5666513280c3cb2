#!/usr/bin/env bash
# The test command: set up the environment, then run the whole suite.
# The converted default encoder is cached in ./.cache/xlsearch so reruns skip the conversion.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export XLSEARCH_HOME="${XLSEARCH_HOME:-$PWD/.cache/xlsearch}"
python -m pytest -q "$@"
