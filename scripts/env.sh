# Sourced by the scripts: one cargo target directory outside the clone, kept between runs, so
# RocksDB (about ten minutes on two cores) is built once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}"
export SKIFF_BIN="$CARGO_TARGET_DIR/debug/skiff"

# Starts 20 s of pod creates only (the store benchmark's `--http-creates-only`) in the
# background, its output in $1, and returns once the creates have begun; `$bench` is its pid.
start_creates_only() {
    cargo test --workspace --bench store_vs_etcd -- --api-only --http-creates-only --seconds 20 --quick \
        >"$1" 2>&1 &
    bench=$!
    until grep -q "HTTP pod creates only" "$1"; do
        kill -0 "$bench" 2>/dev/null || { cat "$1"; return 1; }
        sleep 0.5
    done
}
