#!/usr/bin/env bash
# Measures radosd beside `rados bench` on the same throw-away Ceph cluster,
# in one run: 4 KiB writes (each to a new 4 KiB object, as rados bench
# writes) and 4 KiB random reads of the objects just written, both at
# --iodepth requests in flight. radosd is driven by `xseg-bench object`
# through a segment; rados bench uses librados aio directly. Each round runs
# the two one after the other, which goes first alternating between rounds,
# on a fresh one-node cluster (tools/ceph-test-cluster, memstore). The table shows medians over --repeat rounds with the spread, the
# ratio radosd/rados bench, and CPU time per operation: the client's
# (rados bench; radosd plus xseg-bench) and the OSD's. On a small machine
# the client's CPU is what the OSD does not get.
#
#   bench/rados.sh [--duration 10s] [--repeat 3] [--iodepth 16] [--json FILE]
#
# RADOSD=PATH measures another radosd binary (default bin/radosd).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=10s repeat=3 depth=16 out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--iodepth) depth=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	-h|--help) sed -n '2,15p' "$0"; exit 0 ;;
	*) echo "rados.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
seconds=${duration%s}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "rados.sh: --duration takes whole seconds (10s), as rados bench does" >&2; exit 2; }
for tool in rados jq; do
	command -v $tool >/dev/null || { echo "rados.sh: needs $tool (apt-get install ceph-common jq)" >&2; exit 1; }
done
radosd=${RADOSD:-bin/radosd}
[[ -x $radosd && -x bin/xseg-bench ]] || { echo "rados.sh: needs $radosd and bin/xseg-bench: run make build (with librados-dev installed)" >&2; exit 1; }

work=$(mktemp -d /tmp/bench-rados.XXXXXX)
seg="bench-rados-$$" pool=archipelago peer="" conf=""
cleanup() {
	[[ -n $peer ]] && { kill "$peer" 2>/dev/null; wait "$peer" 2>/dev/null || true; }
	bin/xseg destroy "$seg" 2>/dev/null || true
	tools/ceph-test-cluster stop "$work/cluster" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_cluster: a fresh cluster and radosd on it. Every round gets its
# own: memstore holds every object in RAM, and after some hundred thousand
# objects written and removed its OSD believes itself full ("failsafe
# engaged", with a nonsense percentage) and stalls every write.
start_cluster() {
	conf=$(tools/ceph-test-cluster start "$work/cluster" 2>"$work/start.log" | tail -n 1) ||
		{ cat "$work/start.log" >&2; exit 1; }
	osd=$(cat "$work/cluster/run/osd.0.pid")
	"$radosd" --segment "$seg" --port 1 --pool "$pool" --conf "$conf" --namespace radosd --log-level warning &
	peer=$!
	for _ in $(seq 50); do
		bin/xseg report "$seg" --json 2>/dev/null | jq -e '.ports[]? | select(.port == 1 and .state == "bound")' >/dev/null && break
		sleep 0.1
	done
}
stop_cluster() {
	kill "$peer" && wait "$peer" || true
	peer=""
	if grep -q "failsafe engaged" "$work/cluster/log/osd.0.log" 2>/dev/null; then
		echo "rados.sh: the OSD refused writes as full during this round: use a shorter --duration" >&2
	fi
	tools/ceph-test-cluster stop "$work/cluster" >/dev/null 2>&1
}
bin/xseg create "$seg" >/dev/null

# ticks PID: CPU time of a process so far, in clock ticks; ticks of this
# shell's waited-for children (rados bench, xseg-bench) without PID.
hz=$(getconf CLK_TCK)
ticks() {
	local st
	read -r -a st <"/proc/${1:-$$}/stat"
	if [[ -n ${1:-} ]]; then echo $((st[13] + st[14])); else echo $((st[15] + st[16])); fi
}
# usop TICKS OPS: CPU microseconds per operation.
usop() { jq -n --argjson t "$1" --argjson n "$2" --argjson hz "$hz" 'if $n > 0 then ($t * 1e6 / $hz / $n * 10 | round / 10) else null end'; }

results=$work/results.jsonl
written=0
# rados_bench ROUND write|read: one rados bench phase in namespace bench.
rados_bench() {
	local round=$1 op=$2 c0 o0 c1 o1 res ops
	c0=$(ticks) o0=$(ticks "$osd")
	if [[ $op == write ]]; then
		res=$(rados -c "$conf" -p "$pool" -N bench bench "$seconds" write -b 4096 -t "$depth" --no-cleanup --format json 2>/dev/null | tail -n 1)
		ops=$(jq -r .total_writes_made <<<"$res")
	else
		res=$(rados -c "$conf" -p "$pool" -N bench bench "$seconds" rand -t "$depth" --format json 2>/dev/null | tail -n 1)
		ops=$(jq -r .total_reads_made <<<"$res")
	fi
	c1=$(ticks) o1=$(ticks "$osd")
	jq -c --arg op "$op" --argjson round "$round" --argjson d "$depth" --argjson ops "$ops" \
		--argjson cpu "$(usop $((c1 - c0)) "$ops")" --argjson osd "$(usop $((o1 - o0)) "$ops")" \
		'{system: "rados-bench", op: $op, round: $round, iodepth: $d, size: 4096, ops: $ops,
		  ops_per_sec: (.average_iops | tonumber), p50_us: null, avg_us: ((.average_latency | tonumber) * 1e6 | round),
		  client_cpu_us_per_op: $cpu, osd_cpu_us_per_op: $osd}' <<<"$res" >>"$results"
}
# radosd_bench ROUND write|read: one xseg-bench object phase against radosd
# in namespace radosd; writes go to new objects (50,000 names a second of
# --duration, then they wrap), reads to those written.
radosd_bench() {
	local round=$1 op=$2 c0 o0 p0 c1 o1 p1 res ops args
	if [[ $op == write ]]; then
		args=(--op write --pattern seq --objects $((seconds * 50000)))
	else
		args=(--op read --pattern rand --objects "$written")
	fi
	c0=$(ticks) o0=$(ticks "$osd") p0=$(ticks "$peer")
	res=$(bin/xseg-bench object --segment "$seg" --port 1 "${args[@]}" --size 4K --object-size 4K \
		--iodepth "$depth" --duration "$duration" --json)
	c1=$(ticks) o1=$(ticks "$osd") p1=$(ticks "$peer")
	ops=$(jq -r .ops <<<"$res")
	[[ $op == write ]] && written=$ops
	jq -c --arg op "$op" --argjson round "$round" --argjson ops "$ops" \
		--argjson cpu "$(usop $((c1 - c0 + p1 - p0)) "$ops")" --argjson osd "$(usop $((o1 - o0)) "$ops")" \
		'{system: "radosd", op: $op, round: $round, iodepth, size, ops: $ops, ops_per_sec,
		  p50_us, avg_us: null, errors, client_cpu_us_per_op: $cpu, osd_cpu_us_per_op: $osd}' <<<"$res" >>"$results"
}

for ((round = 1; round <= repeat; round++)); do
	start_cluster
	for op in write read; do
		if ((round % 2)); then
			rados_bench "$round" "$op"
			radosd_bench "$round" "$op"
		else
			radosd_bench "$round" "$op"
			rados_bench "$round" "$op"
		fi
	done
	stop_cluster
done

jq -rs --arg d "$depth" '
	def med(k): map(k) | sort | .[length / 2 | floor];
	def spread(k): "\(map(k) | min | floor)-\(map(k) | max | floor)";
	def r(x): if x == null then "-" else (x * 100 | round / 100) end;
	"test\tradosd ops/s (min-max)\trados bench ops/s (min-max)\tradosd/rados bench\tclient CPU µs/op radosd | rados bench\tOSD CPU µs/op radosd | rados bench",
	(group_by(.op) | sort_by(.[0].op == "read") | .[] |
		(map(select(.system == "radosd"))) as $o | (map(select(.system == "rados-bench"))) as $b |
		"4K \(.[0].op) d\($d)\t\($o | med(.ops_per_sec) | floor) (\($o | spread(.ops_per_sec)))\t\($b | med(.ops_per_sec) | floor) (\($b | spread(.ops_per_sec)))\t" +
		"\(r(($o | med(.ops_per_sec)) / ($b | med(.ops_per_sec))))\t\($o | med(.client_cpu_us_per_op)) | \($b | med(.client_cpu_us_per_op))\t" +
		"\($o | med(.osd_cpu_us_per_op)) | \($b | med(.osd_cpu_us_per_op))")' "$results" | column -t -s $'\t'
[[ -n $out ]] && jq -s . "$results" >"$out"
exit 0
