#!/usr/bin/env bash
# Measures filed beside fio on the same tmpfs, in one run: 4 KiB random
# read and write at iodepth 1 and 16, 1 MiB sequential write and read at
# iodepth 8. filed serves 16 objects of 4 MiB (written first); fio works on
# 16 files of 4 MiB in another directory of the same tmpfs, with psync
# (iodepth D = D threads) and libaio (one thread, D in flight). Each test
# runs --repeat times, the three systems one after the other each time; the
# table shows medians (a shared machine is noisy: look at the spread).
# filed and fio both start warm: fio's files are in the page cache, and
# filed's pages are hot in its views after a warm-up pass. --cpus F:C pins
# filed to CPU list F and xseg-bench to C (taskset; fio stays unpinned), as
# a host's cpus key would: the placement that a queue depth of 1 needs.
#
#   bench/filed.sh [--duration 5s] [--repeat 3] [--dir /dev/shm] [--cpus F:C] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=5s repeat=3 base=/dev/shm out="" fcpus="" ccpus=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--dir) base=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	--cpus)
		[[ $2 == ?*:?* ]] || { echo "filed.sh: --cpus takes FILED:CLIENT CPU lists (1:0)" >&2; exit 2; }
		fcpus=${2%%:*} ccpus=${2#*:}; shift 2 ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "filed.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v fio >/dev/null || { echo "filed.sh: needs fio (apt-get install fio)" >&2; exit 1; }
seconds=${duration%s}
seg="bench-filed-$$" data="$base/filed-data-$$" fiodir="$base/fio-data-$$"
mkdir -p "$data" "$fiodir"
bin/xseg create "$seg" >/dev/null
pin=() cpin=()
if [[ -n $fcpus ]]; then
	command -v taskset >/dev/null || { echo "filed.sh: --cpus needs taskset (util-linux)" >&2; exit 1; }
	pin=(taskset -c "$fcpus") cpin=(taskset -c "$ccpus")
fi
"${pin[@]}" bin/filed --segment "$seg" --port 1 --data-dir "$data" --log-level warning &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; bin/xseg destroy "$seg" 2>/dev/null; rm -rf "$data" "$fiodir"' EXIT
sleep 0.3

obj() { # op pattern size iodepth
	"${cpin[@]}" bin/xseg-bench object --segment "$seg" --port 1 --op "$1" --pattern "$2" --size "$3" \
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
# Warm filed up as the layout warmed fio's page cache: filed serves a page
# through its mapping of the object file only after 16 accesses by system
# call (docs/ARCHITECTURE.md, "Mapped object files"). 3 s of random 4 KiB
# reads touch each of the 16,384 blocks about 50 times at this machine's
# rates; the first pass without it measures the cold path.
bin/xseg-bench object --segment "$seg" --port 1 --op read --pattern rand --size 4K --iodepth 16 \
	--objects 16 --object-size 4M --duration 3s --warmup 0s >/dev/null

results=$(mktemp)
# test LABEL OBJ-ARGS FIO-RW FIO-BS DEPTH: runs the three --repeat times,
# prints one row of medians.
test() {
	local label=$1 rw=$3 bs=$4 d=$5 i f p a
	read -r -a objargs <<<"$2"
	local fs=() ps=() as=()
	for ((i = 0; i < repeat; i++)); do
		f=$(obj "${objargs[@]}" "$d") p=$(fio_run psync "$rw" "$bs" "$d") a=$(fio_run libaio "$rw" "$bs" "$d")
		printf '%s\n' "$(jq -c --arg l "$label" '. + {test: $l}' <<<"$f")" \
			"$(jq -c --arg l "$label" '. + {test: $l}' <<<"$p")" "$(jq -c --arg l "$label" '. + {test: $l}' <<<"$a")" >>"$results"
		fs+=("$f") ps+=("$p") as+=("$a")
	done
	jq -rn --arg l "$label" --argjson f "$(printf '%s\n' "${fs[@]}" | jq -s .)" \
		--argjson p "$(printf '%s\n' "${ps[@]}" | jq -s .)" --argjson a "$(printf '%s\n' "${as[@]}" | jq -s .)" '
		def med(k): map(k) | sort | .[length / 2 | floor];
		def r(x): (x * 100 | round / 100);
		def spread(k): "\(map(k) | min | floor)-\(map(k) | max | floor)";
		"\($l)\t\($f | med(.ops_per_sec) | floor) (\($f | spread(.ops_per_sec)))\t\($f | med(.mib_per_sec) | r(.))\t\($f | med(.p50_us) | r(.))\t" +
		"\($p | med(.ops_per_sec) | floor) (\($p | spread(.ops_per_sec)))\t\($a | med(.ops_per_sec) | floor) (\($a | spread(.ops_per_sec)))\t" +
		"\(r(($f | med(.ops_per_sec)) / ($p | med(.ops_per_sec))))\t\(r(($f | med(.ops_per_sec)) / ($a | med(.ops_per_sec))))"'
}
{
	printf 'test\tfiled ops/s (min-max)\tfiled MiB/s\tfiled p50 µs\tfio psync ops/s\tfio libaio ops/s\tfiled/psync\tfiled/libaio\n'
	for d in 1 16; do
		test "4K randread d$d" "read rand 4K" randread 4k $d
		test "4K randwrite d$d" "write rand 4K" randwrite 4k $d
	done
	test "1M write d8" "write seq 1M" write 1m 8
	test "1M read d8" "read seq 1M" read 1m 8
} | column -t -s $'\t'
[[ -n $out ]] && jq -s . "$results" >"$out"
rm -f "$results"
exit 0
