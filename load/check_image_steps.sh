#!/usr/bin/env bash
# Replays the Docker image's install steps without Docker, under a temporary directory:
#   stage 1: copy what the Dockerfile copies, `pip wheel` the project into a wheel dir;
#   stage 2: a fresh virtualenv installs from those wheels only (--no-index), static/ is
#            copied beside it, and `hub serve` must answer /healthz as the HEALTHCHECK asks.
# Needs PyPI for the build dependencies. Exits non-zero on the first failure.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hub-image.XXXXXX")"
server=""

cleanup() {
    if [[ -n "$server" ]] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "stage 1: wheels ($("$python" --version))"
mkdir -p "$work/src"
cp "$root/pyproject.toml" "$root/README.md" "$work/src/"  # COPY pyproject.toml README.md ./
cp -r "$root/hub" "$work/src/hub"                         # COPY hub ./hub
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m venv "$work/build"
"$work/build/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
(cd "$work/src" && "$work/build/bin/pip" wheel --quiet --disable-pip-version-check \
    --no-cache-dir --wheel-dir "$work/wheels" '.[fast]')
ls "$work/wheels"

step "stage 2: install from the wheels only"
"$python" -m venv "$work/app"
"$work/app/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
    --no-index --find-links="$work/wheels" "$work"/wheels/*.whl
cp -r "$root/static" "$work/app/static"                   # COPY static /app/static
mkdir -p "$work/data"

step "serve and probe /healthz"
port="$("$work/app/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(
    cd "$work/data"  # WORKDIR /data, outside the source tree
    export HUB_STATIC_DIR="$work/app/static" DATABASE_URL="sqlite:///$work/data/hub.db"
    exec "$work/app/bin/hub" serve --host 127.0.0.1 --port "$port"
) >"$work/serve.log" 2>&1 &
server=$!

probe() {
    "$work/app/bin/python" - "$1" <<'EOF'
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    body = response.read()
    sys.exit(0 if response.status == 200 and body else 1)
EOF
}

healthy=""
for _ in $(seq 1 60); do
    if ! kill -0 "$server" 2>/dev/null; then
        echo "hub serve exited early:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    if probe "http://127.0.0.1:$port/healthz" 2>/dev/null; then
        healthy=1
        break
    fi
    sleep 0.5
done
if [[ -z "$healthy" ]]; then
    echo "/healthz never answered 200:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "GET /healthz: 200"
if ! probe "http://127.0.0.1:$port/"; then
    echo "GET / failed: the page is not served from HUB_STATIC_DIR" >&2
    exit 1
fi
echo "GET / (the page from HUB_STATIC_DIR): 200"
cd "$work/data"  # not the source tree: `import hub` must find the installed wheel
"$work/app/bin/python" - "$work/app" <<'EOF'
import sys

import hub

print("hub imported from", hub.__file__)
sys.exit(0 if hub.__file__.startswith(sys.argv[1]) else "not the installed wheel")
EOF

step "stop"
kill -TERM "$server"
wait "$server" || status=$?
server=""
if [[ "${status:-0}" -ne 0 && "${status:-0}" -ne 143 ]]; then
    echo "hub serve stopped with status ${status}:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
if grep -q Traceback "$work/serve.log"; then
    echo "hub serve logged a traceback:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "stopped cleanly; image steps OK"
