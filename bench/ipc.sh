#!/usr/bin/env bash
# Measures XSEG round trips through a null peer beside the two baselines,
# in one run: a unix-socket closed loop between two processes with the same
# request size, and a bare two-process shared-memory ring pair (the ceiling).
#
#   bench/ipc.sh [--duration 3s] [--size 0] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=3s size=0 out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	-h|--help) sed -n '2,7p' "$0"; exit 0 ;;
	*) echo "ipc.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
seg="bench-ipc-$$"
bin/xseg create "$seg" >/dev/null
bin/xseg-bench serve --segment "$seg" --port 0 2>/dev/null &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; bin/xseg destroy "$seg" 2>/dev/null' EXIT
sleep 0.3

results=$(mktemp)
row() { # label, json
	echo "$2" >>"$results"
	jq -r --arg l "$1" '"\($l)\t\(.iodepth)\t\(.ops_per_sec|floor)\t\(.p50_us*100|round/100)\t\(.p99_us*100|round/100)"' <<<"$2"
}
{
	printf 'system\tiodepth\tops/s\tp50 µs\tp99 µs\n'
	for d in 1 16 128; do
		row xseg "$(bin/xseg-bench ipc --segment "$seg" --port 0 --iodepth $d --size "$size" --duration "$duration" --json)"
		row unix-socket "$(bin/ipc-baseline unix --iodepth $d --size "$size" --duration "$duration" --json)"
		row bare-ring "$(bin/ipc-baseline ring --iodepth $d --duration "$duration" --json)"
	done
} | column -t -s $'\t'

all=$(jq -s . "$results")
rm -f "$results"
echo
jq -r '
	def ops(m; d): map(select(.mode == m and .iodepth == d))[0].ops_per_sec;
	"ratios: xseg/unix-socket at iodepth 16 = \(ops("ipc";16) / ops("unix";16) * 100 | round / 100), " +
	"xseg/bare-ring at iodepth 128 = \(ops("ipc";128) / ops("ring";128) * 100 | round / 100)"' <<<"$all"
[[ -n $out ]] && echo "$all" >"$out"
exit 0
