#!/usr/bin/env bash
# Measures volume I/O through vlmcd beside the same load straight to the
# blocker, in one run, on a host (filed, mapperd, vlmcd as archipelago
# starts them, vlmcd doing filed's object I/O itself) whose data directory
# is on tmpfs: 4 KiB random read and write at iodepth 1 and 16, 1 MiB
# sequential read and write at iodepth 8. vlmcd serves a 1 GiB volume
# (written first); the direct load uses 256 objects of 4 MiB on filed.
# Each test runs --repeat times, the two one after the other each time; the
# table shows medians and their ratio.
#
#   bench/vlmcd.sh [--duration 3s] [--repeat 3] [--dir /dev/shm] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
duration=3s repeat=3 base=/dev/shm out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--dir) base=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	-h|--help) sed -n '2,11p' "$0"; exit 0 ;;
	*) echo "vlmcd.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v jq >/dev/null || { echo "vlmcd.sh: needs jq (make deps installs it)" >&2; exit 1; }
w="$base/vlmcdbench-work-$$"
seg="vlmcdbench-$$"
conf="$w/archipelago.conf"
host_conf "$conf" "$w" "$seg"
trap 'bin/archipelago --config "$conf" stop >/dev/null 2>&1 || true; rm -rf "$w"' EXIT
bin/archipelago --config "$conf" start >/dev/null
bin/vlmc --config "$conf" create bench --size 1G >/dev/null

run() { # kind op pattern size iodepth
	local mode=object target=(--objects 256 --object-size 4M --prefix direct) port=1
	[[ $1 == vlmcd ]] && { mode=volume target=(--name bench); port=3; }
	bin/xseg-bench $mode --segment "$seg" --port $port --op "$2" --pattern "$3" --size "$4" \
		--iodepth "$5" "${target[@]}" --duration "$duration" --json |
		jq -c --arg k "$1" --arg t "$2 $3 $4 qd$5" '. + {kind: $k, test: $t}'
}
# Lay the data out once: the volume's blocks and the direct objects.
for k in vlmcd direct; do
	mode=object port=1 target=(--objects 256 --object-size 4M --prefix direct)
	[[ $k == vlmcd ]] && { mode=volume port=3 target=(--name bench); }
	bin/xseg-bench $mode --segment "$seg" --port $port --op write --pattern seq --size 1M --iodepth 8 \
		"${target[@]}" --duration 0.1s --warmup 0s --prefill >/dev/null
done

results="$w/results.jsonl"
for ((i = 0; i < repeat; i++)); do
	for spec in "read rand 4K 1" "write rand 4K 1" "read rand 4K 16" "write rand 4K 16" "read seq 1M 8" "write seq 1M 8"; do
		read -r op pat size d <<<"$spec"
		for k in vlmcd direct; do
			echo "run $((i + 1))/$repeat: $k $op $pat $size qd$d" >&2
			run "$k" "$op" "$pat" "$size" "$d" >>"$results"
		done
	done
done
{
	printf 'test\tvlmcd ops/s\tvlmcd MiB/s\tvlmcd p50 µs\tdirect ops/s\tdirect MiB/s\tdirect p50 µs\tvlmcd/direct\n'
	jq -rs '
		def med(k): map(k) | sort | .[length / 2 | floor];
		def r(x): (x * 100 | round / 100);
		group_by(.test)[] | . as $g |
		($g | map(select(.kind == "vlmcd"))) as $v | ($g | map(select(.kind == "direct"))) as $d |
		"\($v[0].test)\t\($v | med(.ops_per_sec) | floor)\t\($v | med(.mib_per_sec) | r(.))\t\($v | med(.p50_us) | r(.))\t" +
		"\($d | med(.ops_per_sec) | floor)\t\($d | med(.mib_per_sec) | r(.))\t\($d | med(.p50_us) | r(.))\t" +
		"\(r(($v | med(.ops_per_sec)) / ($d | med(.ops_per_sec))))"' "$results"
} | column -t -s $'\t'
[[ -z $out ]] || jq -s . "$results" >"$out"
