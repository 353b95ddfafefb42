#!/usr/bin/env bash
# Idle cost and memory of a peer: starts a null peer on a segment with
# 1 GiB of buffer space, leaves it idle, and reports the CPU it used and its
# resident memory (its own: anonymous + file-backed; and segment pages).
#
#   bench/idle.sh [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=10
[[ ${1:-} == --seconds ]] && seconds=$2
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,6p' "$0"; exit 0; }
seg="bench-idle-$$"
bin/xseg create "$seg" --buffer 1G >/dev/null
bin/xseg-bench serve --segment "$seg" --port 0 2>/dev/null &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; bin/xseg destroy "$seg" 2>/dev/null' EXIT
sleep 1
# Some traffic first, so the figures include a peer that has worked.
bin/xseg-bench ipc --segment "$seg" --port 0 --iodepth 16 --size 64K --duration 1s >/dev/null
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$peer/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks) s0=$(date +%s.%N)
sleep "$seconds"
t1=$(ticks) s1=$(date +%s.%N)
awk -v t=$((t1 - t0)) -v hz="$hz" -v s0="$s0" -v s1="$s1" \
	'BEGIN { printf "idle CPU of the null peer over %.1f s: %.3f %% of one core\n", s1 - s0, 100 * t / hz / (s1 - s0) }'
awk '/^(VmRSS|RssAnon|RssFile|RssShmem)/ { printf "%-9s %8.1f MiB\n", $1, $2 / 1024 }' "/proc/$peer/status"
awk '/^(RssAnon|RssFile)/ { own += $2 } END { printf "own RSS (anon + file): %.1f MiB, on a segment of %s\n", own / 1024, "1 GiB buffer space" }' "/proc/$peer/status"
