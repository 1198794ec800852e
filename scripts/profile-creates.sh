#!/usr/bin/env bash
# Profiles the three servers under pod creates over HTTP: runs the creates-only benchmark for
# 20 s and samples every `skiff server` with perf for 10 s in its middle.
#
#   scripts/profile-creates.sh [OUT]      (default OUT=/tmp/profile)
#
# Writes OUT.bench.log (the benchmark's output, with the servers' CPU per create), OUT.data
# (perf samples) and OUT.txt (self time by process, library and symbol). CALL_GRAPH=dwarf
# records call stacks as well (larger files; read them with `perf report -i OUT.data`), and
# BIN=PATH runs the servers from a saved binary instead of the current build (for A/B runs).
# Needs perf (Debian's linux-perf); on machines without hardware counters it samples cpu-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export SKIFF_BIN="${BIN:-$SKIFF_BIN}"
out="${1:-/tmp/profile}"
start_creates_only "$out.bench.log"
sleep 5
pids="$(pgrep -f "$(basename "$SKIFF_BIN") server" | paste -sd, -)"
graph=()
[ -n "${CALL_GRAPH:-}" ] && graph=(--call-graph "$CALL_GRAPH")
perf record -q -F 499 "${graph[@]}" -p "$pids" -o "$out.data" -- sleep 10 2>/dev/null
wait "$bench"
perf report -i "$out.data" --no-children --sort pid,dso,sym --stdio 2>/dev/null | grep -v '^$' >"$out.txt"
grep "pod create (HTTP)" "$out.bench.log"
