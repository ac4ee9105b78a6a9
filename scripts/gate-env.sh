#!/usr/bin/env bash
# The gate's Python environment on a self-hosted runner: kept outside the workspace (checkout's
# clean deletes everything inside it), keyed by what it installs.
#
#     scripts/gate-env.sh TORCH_INDEX >> "$GITHUB_PATH"    # prints the environment's bin folder
#
# The key hashes the Python version, the torch index and requirements.txt. First choice is an
# environment baked into the runner's image: $GATE_ENV_IMAGE (default /opt/mnist-gate/envs),
# built there by root when the image is made (`sudo GATE_ENV_ROOT=/opt/mnist-gate/envs
# scripts/gate-env.sh INDEX`) and so owned by root: a job can neither change it nor pay for it.
# When the image holds none for this key (requirements.txt changed since the image was made), it
# is built in $GATE_ENV_ROOT (default ~/.cache/mnist-gate), with a warning: on a VM thrown away
# after each job, that is every job. There the disk is bounded: pip keeps no cache, and at most
# $GATE_ENV_KEEP environments (default 3) stay, the least recently used going first, as does one
# unused for 14 days. A lock keeps two jobs on one machine from building at once; an environment
# counts only once its last install step has finished and it imports what the gate needs, and it
# is made read-only then, against accidents (its owner can make it writable again; the throw-away
# VM is what keeps one job from changing what the next one uses). One that no longer imports is
# rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."

index=${1:?usage: scripts/gate-env.sh TORCH_INDEX}
root=${GATE_ENV_ROOT:-$HOME/.cache/mnist-gate}
keep=${GATE_ENV_KEEP:-3}
key=$({ python3 --version; echo "$index"; cat requirements.txt; } | sha256sum | cut -c1-16)
env=$root/venv-$key
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

works() {
    [ -e "$1/complete" ] && "$1/bin/python" -c "import numpy, pytest, torch, torchvision" 2>/dev/null
}

remove() {
    chmod -R u+w "$1" 2>/dev/null || true
    rm -rf "$1"
}

image=${GATE_ENV_IMAGE:-/opt/mnist-gate/envs}
if [ "$image" != "$root" ] && works "$image/venv-$key"; then
    echo "reusing the runner image's $image/venv-$key" >&2
    echo "$image/venv-$key/bin"
    exit 0
fi
if [ -d "$image" ] && [ "$image" != "$root" ]; then
    echo "::warning::the runner image's $image has no environment for this requirements.txt;" \
        "building one in $root (minutes, every job on a fresh VM): rebuild the image" >&2
fi

mkdir -p "$root"
exec 9>"$root/lock"
flock 9
if works "$env"; then
    echo "reusing $env" >&2
else
    echo "building $env" >&2
    remove "$env"
    python3 -m venv "$env"
    # torch and torchvision from the index first (CUDA or CPU build), then the pinned rest.
    "$env/bin/pip" install --quiet $(grep -E '^torch(vision)?==' requirements.txt) \
        --index-url "$index" >&2
    "$env/bin/pip" install --quiet -r requirements.txt >&2
    touch "$env/complete"
    works "$env" || { echo "the environment built in $env does not import the gate's packages" >&2; exit 1; }
    chmod -R a-w "$env"
fi
touch -h "$env"
find "$root" -maxdepth 1 -name 'venv-*' ! -name "venv-$key" -mtime +14 -print0 |
    while IFS= read -r -d '' old; do remove "$old"; done
ls -1dt "$root"/venv-* | tail -n +"$((keep + 1))" | while IFS= read -r old; do
    [ "$old" = "$env" ] || remove "$old"
done
echo "$env/bin"
