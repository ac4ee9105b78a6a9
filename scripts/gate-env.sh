#!/usr/bin/env bash
# The gate's Python environment on a self-hosted runner: kept outside the workspace (checkout's
# clean deletes everything inside it), keyed by what it installs, built only when that changes.
#
#     scripts/gate-env.sh TORCH_INDEX >> "$GITHUB_PATH"    # prints the environment's bin folder
#
# The key hashes the Python version, the torch index and requirements.txt. Environments live in
# $GATE_ENV_ROOT (default ~/.cache/mnist-gate); one unused for 14 days is removed. A lock keeps two
# jobs on one machine from building the same environment at once, and an environment counts only
# once its last install step has finished, so an interrupted build is rebuilt, never used.
set -euo pipefail
cd "$(dirname "$0")/.."

index=${1:?usage: scripts/gate-env.sh TORCH_INDEX}
root=${GATE_ENV_ROOT:-$HOME/.cache/mnist-gate}
key=$({ python3 --version; echo "$index"; cat requirements.txt; } | sha256sum | cut -c1-16)
env=$root/venv-$key

mkdir -p "$root"
exec 9>"$root/lock"
flock 9
if [ ! -e "$env/complete" ]; then
    echo "building $env" >&2
    rm -rf "$env"
    python3 -m venv "$env"
    # torch and torchvision from the index first (CUDA or CPU build), then the pinned rest.
    "$env/bin/pip" install --quiet $(grep -E '^torch(vision)?==' requirements.txt) \
        --index-url "$index" >&2
    "$env/bin/pip" install --quiet -r requirements.txt >&2
    touch "$env/complete"
else
    echo "reusing $env" >&2
fi
touch "$env"
find "$root" -maxdepth 1 -name 'venv-*' ! -name "venv-$key" -mtime +14 -exec rm -rf {} +
echo "$env/bin"
