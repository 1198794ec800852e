#!/usr/bin/env bash
# Fresh Debian machine → a running local 3-server skiff cluster in ${SKIFF_DIR:-$HOME/.skiff/local}.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
# The same build as the test suite, so switching between the two never rebuilds dependencies.
cargo build --workspace --all-targets
DIR="${SKIFF_DIR:-$HOME/.skiff/local}"
"$SKIFF_BIN" local down --dir "$DIR" >/dev/null 2>&1 || true
exec "$SKIFF_BIN" local up --dir "$DIR" --servers "${SKIFF_SERVERS:-3}"
