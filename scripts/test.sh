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
cargo test --workspace -- --test-threads=1 --show-output
cargo test --workspace --bench store_vs_etcd -- --quick
