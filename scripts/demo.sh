#!/usr/bin/env bash
# The main job: set up, index the shipped bilingual demo corpus, search it in both directions.
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
echo '== English query, answers written in Chinese =='
xlsearch search "how do I make a layer transparent" --db "$DB" -k 5 --lang zh
echo '== Chinese query, answers written in English =='
xlsearch search "如何裁剪图像" --db "$DB" -k 5 --lang en
