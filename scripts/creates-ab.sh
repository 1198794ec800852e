#!/usr/bin/env bash
# Alternates two builds of `skiff` under the creates-only benchmark, so that the machine's drift
# falls on both alike, and prints for every run the creates' throughput, the servers' CPU per
# create, the log's sync time, and the disk's write rate and each server's RSS growth per create
# over 10 s in the middle of the run (the leader grows most: it also holds the controllers' caches).
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
# Each given process's resident memory in KiB, in the order given.
rss_kib() { for pid in "$@"; do awk '/^VmRSS/ { printf "%s ", $2 }' "/proc/$pid/status" 2>/dev/null || printf "0 "; done; }
written() { awk -v d="$disk" '$3 == d { print $10 }' /proc/diskstats; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for round in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        SKIFF_BIN="$bin" start_creates_only "$log"
        sleep 4
        pids="$(pgrep -f "$(basename "$bin") server" || true)"
        rss_before="$(rss_kib $pids)"
        before="$(written)"
        sleep 10
        after="$(written)"
        rss_after="$(rss_kib $pids)"
        wait "$bench"
        mib=$(( (after - before) * 512 / 1048576 / 10 ))
        rate="$(grep -o 'pod create (HTTP): [0-9]*' "$log" | grep -o '[0-9]*$')"
        growth="$(paste -d' ' <(echo "$rss_before" | tr ' ' '\n') <(echo "$rss_after" | tr ' ' '\n') |
            awk -v r="${rate:-0}" 'r > 0 && NF == 2 { printf "%.1f ", ($2 - $1) / 10 / r }')"
        echo "round $round $(basename "$bin"): $(grep -o 'pod create (HTTP).*' "$log"), disk $disk $mib MiB/s, servers' RSS growth per create ${growth}KiB"
    done
done
