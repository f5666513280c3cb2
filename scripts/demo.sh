#!/usr/bin/env bash
# The main job: set up, index the shipped bilingual demo corpus, search it in both directions,
# then serve the search page.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export XLSEARCH_HOME="${XLSEARCH_HOME:-$PWD/.cache/xlsearch}"
DB="${DB:-$PWD/.cache/demo-index}"
xlsearch model convert >/dev/null
xlsearch index demo/corpus --db "$DB" --prune
xlsearch info --db "$DB"
echo
# Two of demo/queries.tsv: each answer exists only in the other language.
echo '== English query; the answer (ch01-how_to_shutdown_the_system) exists only in Chinese =='
xlsearch search "how do I shut down the system" --db "$DB" -k 5
echo '== Chinese query; the answer (ch04-sudo) exists only in English =='
xlsearch search "如何配置 sudo" --db "$DB" -k 5
echo
echo "== serving the search page on http://127.0.0.1:${PORT:-8000}/ (Ctrl-C to stop) =="
exec xlsearch serve --db "$DB" --host 127.0.0.1 --port "${PORT:-8000}"
