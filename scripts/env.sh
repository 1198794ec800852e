# Sourced by the scripts: one cargo target directory outside the clone, kept between runs, so
# RocksDB (about ten minutes on two cores) is built once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/skiff/target}"
export SKIFF_BIN="$CARGO_TARGET_DIR/debug/skiff"
