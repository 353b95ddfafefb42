#!/usr/bin/env bash
# Measures filed beside fio on the same tmpfs, in one run: 4 KiB random
# read and write at iodepth 1 and 16, 1 MiB sequential write and read at
# iodepth 8. filed serves 16 objects of 4 MiB (written first); fio works on
# 16 files of 4 MiB in another directory of the same tmpfs, with psync
# (iodepth D = D threads) and libaio (one thread, D in flight).
#
#   bench/filed.sh [--duration 5s] [--dir /dev/shm] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=5s base=/dev/shm out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--dir) base=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "filed.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v fio >/dev/null || { echo "filed.sh: needs fio (apt-get install fio)" >&2; exit 1; }
seconds=${duration%s}
seg="bench-filed-$$" data="$base/filed-data-$$" fiodir="$base/fio-data-$$"
mkdir -p "$data" "$fiodir"
bin/xseg create "$seg" >/dev/null
bin/filed --segment "$seg" --port 1 --data-dir "$data" --log-level warning &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; bin/xseg destroy "$seg" 2>/dev/null; rm -rf "$data" "$fiodir"' EXIT
sleep 0.3

obj() { # op pattern size iodepth
	bin/xseg-bench object --segment "$seg" --port 1 --op "$1" --pattern "$2" --size "$3" \
		--iodepth "$4" --objects 16 --object-size 4M --duration "$duration" --json
}
fio_run() { # engine rw bs iodepth
	local jobs=1 depth=$4
	[[ $1 == psync ]] && { jobs=$4 depth=1; }
	fio --name=bench --directory="$fiodir" --filename_format='f.$filenum' --nrfiles=16 \
		--filesize=4M --size=64M --file_service_type="$([[ $2 == rand* ]] && echo random || echo sequential)" --ioengine="$1" --rw="$2" --bs="$3" \
		--iodepth="$depth" --numjobs="$jobs" --thread --group_reporting --time_based \
		--runtime="$seconds" --ramp_time=0.25 --output-format=json |
		jq -c --arg e "$1" --arg rw "$2" --argjson d "$4" \
			'.jobs[0] | (if (.read.io_bytes > 0) then .read else .write end) as $x |
			{mode: ("fio-" + $e), rw: $rw, iodepth: $d, ops_per_sec: $x.iops, mib_per_sec: ($x.bw / 1024),
			 p50_us: ($x.clat_ns.percentile["50.000000"] / 1000), p99_us: ($x.clat_ns.percentile["99.000000"] / 1000)}'
}

# Lay the data out once: filed's objects, fio's files.
bin/xseg-bench object --segment "$seg" --port 1 --op read --size 1M --iodepth 8 --objects 16 \
	--object-size 4M --duration 0.1s --warmup 0s --prefill >/dev/null
fio --name=layout --directory="$fiodir" --filename_format='f.$filenum' --nrfiles=16 --filesize=4M \
	--size=64M --rw=write --bs=1M --ioengine=psync >/dev/null

results=$(mktemp)
row() { # label, filed json, psync json, libaio json
	local f=$2 p=$3 a=$4
	printf '%s\n%s\n%s\n' "$f" "$p" "$a" >>"$results"
	jq -rn --arg l "$1" --argjson f "$f" --argjson p "$p" --argjson a "$a" \
		'def r(x): (x * 100 | round / 100); 
		"\($l)\t\($f.ops_per_sec|floor)\t\($f.mib_per_sec|r(.))\t\($f.p50_us|r(.))\t\($p.ops_per_sec|floor)\t\($a.ops_per_sec|floor)\t\(r($f.ops_per_sec / $p.ops_per_sec))\t\(r($f.ops_per_sec / $a.ops_per_sec))"'
}
{
	printf 'test\tfiled ops/s\tfiled MiB/s\tfiled p50 µs\tfio psync ops/s\tfio libaio ops/s\tfiled/psync\tfiled/libaio\n'
	for d in 1 16; do
		row "4K randread d$d" "$(obj read rand 4K $d)" "$(fio_run psync randread 4k $d)" "$(fio_run libaio randread 4k $d)"
		row "4K randwrite d$d" "$(obj write rand 4K $d)" "$(fio_run psync randwrite 4k $d)" "$(fio_run libaio randwrite 4k $d)"
	done
	row "1M write d8" "$(obj write seq 1M 8)" "$(fio_run psync write 1m 8)" "$(fio_run libaio write 1m 8)"
	row "1M read d8" "$(obj read seq 1M 8)" "$(fio_run psync read 1m 8)" "$(fio_run libaio read 1m 8)"
} | column -t -s $'\t'
[[ -n $out ]] && jq -s . "$results" >"$out"
rm -f "$results"
exit 0
