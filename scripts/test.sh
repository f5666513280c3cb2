#!/usr/bin/env bash
# The test command: set up the environment, check the import layers and lint, then run the whole suite.
# Browser tests need Debian's chromium, chromium-driver and fonts-noto-cjk (so screenshots show
# real Chinese glyphs); they are installed here when missing and apt is available.
# The converted default encoder is cached in ./.cache/xlsearch so reruns skip the conversion.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
  else
    echo "note: chromium, chromium-driver and fonts-noto-cjk are not installed; browser tests will be skipped" >&2
  fi
fi
. .venv/bin/activate
export XLSEARCH_HOME="${XLSEARCH_HOME:-$PWD/.cache/xlsearch}"
# The layers point one way and the code keeps its style (contracts and rules in pyproject.toml).
lint-imports --no-cache --no-logo
ruff check .
python -m pytest -q "$@"
