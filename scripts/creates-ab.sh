#!/usr/bin/env bash
# Alternates two builds of `skiff` under the creates-only benchmark, so that the machine's drift
# falls on both alike, and prints for every run the creates' throughput, the servers' CPU per
# create, the log's sync time and the disk's write rate over 10 s in the middle of the run.
#
#   scripts/creates-ab.sh A_BIN B_BIN [ROUNDS]      (default 3 rounds: A B A B A B)
#
# Save a build with `cp "$HOME/.cache/skiff/target/debug/skiff" /tmp/skiff-a` before changing it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
a="$1" b="$2" rounds="${3:-3}"
cargo build --workspace --bench store_vs_etcd >/dev/null 2>&1
# The disk holding the data dirs (under /tmp): its partition's parent, or itself when whole.
source="$(findmnt -no source -T /tmp)"
disk="$(lsblk -no pkname "$source" 2>/dev/null | head -1)"
disk="${disk:-$(basename "$source")}"
written() { awk -v d="$disk" '$3 == d { print $10 }' /proc/diskstats; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for round in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        SKIFF_BIN="$bin" start_creates_only "$log"
        sleep 4
        before="$(written)"
        sleep 10
        after="$(written)"
        wait "$bench"
        mib=$(( (after - before) * 512 / 1048576 / 10 ))
        echo "round $round $(basename "$bin"): $(grep -o 'pod create (HTTP).*' "$log"), disk $disk $mib MiB/s"
    done
done
