#!/usr/bin/env bash
# Create benchmarks/.venv-shinka holding ShinkaEvolve 0.0.7's database layer, for the
# side-by-side run in benchmarks/workload.py. Its declared dependencies are heavy (torch,
# and more); `shinka.database` needs only the handful installed here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SHINKA_VENV:-$here/.venv-shinka}"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet --no-deps shinka-evolve==0.0.7
"$venv/bin/pip" install --quiet numpy rich radon python-dotenv openai pandas google-genai
"$venv/bin/python" -c "import shinka, shinka.database; print('ShinkaEvolve', shinka.__version__)"
echo "ready: $venv"
