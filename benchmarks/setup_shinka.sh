#!/usr/bin/env bash
# Create benchmarks/.venv-shinka (or $SHINKA_VENV) holding ShinkaEvolve 0.0.7 with what its
# evolution runner imports at run time, and Genesis's own runtime dependencies, so that the
# side-by-side benchmarks (benchmarks/workload.py) and the runner harness
# (tests/shinka_runner/) can run ShinkaEvolve with this repository on PYTHONPATH.
#
# ShinkaEvolve's declared dependencies are heavy (matplotlib, seaborn, moviepy, ...) and it
# is installed --no-deps; the list below is what a run of ShinkaEvolveRunner imports
# (checked against sys.modules after tests/shinka_runner/drive.py). The versions are the
# ones that run was verified with.
#
# Cached: when the venv exists and its marker records the same requirements, this returns
# at once. Otherwise the venv is built afresh (about a minute).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${SHINKA_VENV:-$here/.venv-shinka}"
marker="$venv/.genesis-requirements"

shinka="shinka-evolve==0.0.7"
requirements=(
    # What ShinkaEvolveRunner imports at run time.
    aiofiles==25.1.0
    anthropic==2.14.0
    backoff==2.2.1
    google-genai==3.6.1
    hydra-core==1.3.2
    instructor==1.17.0
    numpy==2.4.6
    openai==3.3.0
    pandas==3.1.1
    psutil==7.2.2
    python-dotenv==1.2.4
    pyyaml==6.0.4
    radon==6.0.1
    rich==14.3.4
    scikit-learn==1.9.1
    unidiff==1.0.1
    # Genesis's runtime dependencies (pyproject.toml), for PYTHONPATH=<repository>.
    "aiosqlite>=0.20"
    "psycopg[binary,pool]>=3.2"
)
wanted="$(python3 --version 2>&1); $shinka; ${requirements[*]}"

if [[ -x "$venv/bin/python" && -f "$marker" && "$(cat "$marker")" == "$wanted" ]]; then
    echo "ready: $venv"
    exit 0
fi

# pip's chatter goes to a log, shown only if a step fails.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
quietly() {
    if ! "$@" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "setup_shinka.sh: failed: $*" >&2
        exit 1
    fi
}
if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
    echo "setup_shinka.sh: $venv exists and is not a virtual environment; not replacing it" >&2
    exit 1
fi
rm -rf "$venv"
quietly python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check --no-input)
quietly "${pip[@]}" install "${requirements[@]}"
quietly "${pip[@]}" install --no-deps "$shinka"
"$venv/bin/python" - <<'EOF'
import aiosqlite, psycopg, psycopg_pool, radon  # noqa: F401  Genesis's dependencies
import shinka, shinka.core.async_runner  # noqa: F401  the runner and all it imports
assert shinka.__version__ == "0.0.7", shinka.__version__
EOF
printf '%s' "$wanted" > "$marker"
echo "ready: $venv"
