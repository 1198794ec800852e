#!/usr/bin/env bash
# The whole test suite: format and lint checks, unit tests, real-process end-to-end tests, and
# the short side-by-side benchmark against etcd. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
. scripts/env.sh
cargo fmt --all -- --check
cargo build --workspace --all-targets
cargo clippy --workspace --all-targets -- -D warnings
# The end-to-end tests start clusters of real processes; one test at a time keeps elections
# honest on small machines.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --lib --bins --tests -- --test-threads=1 --show-output 2>&1 | tee "$log"
cargo test --workspace --bench store_vs_etcd -- --quick
cargo test --workspace --bench pod_startup -- --quick
cargo test --workspace --bench api_tls -- --quick
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
