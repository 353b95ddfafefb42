#!/usr/bin/env bash
# Measures nbdd beside qemu-nbd and nbdkit file, in one run, with fio's nbd
# engine over unix sockets: 4 KiB random read and write at iodepth 1 and
# 32, 1 MiB sequential read and write at iodepth 8, then nbdcopy out of the
# 1 GiB volume / image, and the RSS of nbdd with 64 connections open.
# nbdd serves a 1 GiB volume of a host (filed, mapperd, vlmcd, nbdd) whose
# data directory is on tmpfs; qemu-nbd (--cache=writeback --aio=threads
# --shared=8) and nbdkit file serve a raw 1 GiB file on the same tmpfs.
# Volume and file hold the same random data. Each test runs --repeat
# times, the servers one after the other each time; the table shows
# medians and the ratio of nbdd to qemu-nbd.
#
#   bench/nbd.sh [--runtime 5] [--repeat 3] [--dir /dev/shm] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/host.sh
runtime=5 repeat=3 base=/dev/shm out=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--runtime) runtime=$2; shift 2 ;;
	--dir) base=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--json) out=$2; shift 2 ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "nbd.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
for t in fio qemu-nbd nbdkit nbdcopy jq /usr/bin/python3; do
	command -v $t >/dev/null || { echo "nbd.sh: needs $t (make deps installs it)" >&2; exit 1; }
done
w="$base/nbdbench-work-$$"
conf="$w/archipelago.conf"
host_conf "$conf" "$w" "nbdbench-$$" nbdd
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	bin/archipelago --config "$conf" stop >/dev/null 2>&1 || true
	rm -rf "$w"
}
trap cleanup EXIT

echo "preparing: 1 GiB of random data, the host, the volume" >&2
head -c $((1 << 30)) /dev/urandom >"$w/disk.raw"
bin/archipelago --config "$conf" start >/dev/null
bin/vlmc --config "$conf" import bench "$w/disk.raw" >/dev/null
nbdd_uri=$(bin/vlmc --config "$conf" map bench | head -1)
nbdd_pid=$(cat "$w/run/nbdd.pid")
qemu-nbd -f raw --cache=writeback --aio=threads --shared=8 -t -k "$w/qemu.sock" "$w/disk.raw" &
pids+=($!)
nbdkit -f -U "$w/nbdkit.sock" file "$w/disk.raw" &
pids+=($!)
sleep 1
declare -A uri=([nbdd]="$nbdd_uri" [qemu-nbd]="nbd+unix:///?socket=$w/qemu.sock" [nbdkit]="nbd+unix:///?socket=$w/nbdkit.sock")
servers=(nbdd qemu-nbd nbdkit)

fio_run() { # server rw bs iodepth
	fio --name=bench --ioengine=nbd --uri="${uri[$1]}" --rw="$2" --bs="$3" --iodepth="$4" \
		--size=1G --time_based --runtime="$runtime" --ramp_time=1 --norandommap --randrepeat=0 \
		--output-format=json --output="$w/fio.json" >/dev/null
	jq -c --arg s "$1" --arg rw "$2" --arg bs "$3" --argjson d "$4" \
		'.jobs[0] | (if (.read.io_bytes > 0) then .read else .write end) as $x |
		{server: $s, test: "\($rw) \($bs) qd\($d)", ops_per_sec: $x.iops, mib_per_sec: ($x.bw / 1024),
		 p50_us: ($x.clat_ns.percentile["50.000000"] / 1000), p99_us: ($x.clat_ns.percentile["99.000000"] / 1000)}' "$w/fio.json"
}
copy_run() { # server
	local t0 t1
	t0=$(date +%s.%N)
	nbdcopy "${uri[$1]}" null:
	t1=$(date +%s.%N)
	jq -cn --arg s "$1" --argjson t "$(echo "$t1 - $t0" | bc -l)" \
		'{server: $s, test: "nbdcopy 1G", ops_per_sec: 0, mib_per_sec: (1024 / $t), p50_us: 0, p99_us: 0}'
}

results="$w/results.jsonl"
for ((i = 0; i < repeat; i++)); do
	for spec in "randread 4k 1" "randwrite 4k 1" "randread 4k 32" "randwrite 4k 32" "read 1M 8" "write 1M 8"; do
		read -r rw bs d <<<"$spec"
		for s in "${servers[@]}"; do
			echo "run $((i + 1))/$repeat: $s $rw $bs qd$d" >&2
			fio_run "$s" "$rw" "$bs" "$d" >>"$results"
		done
	done
	for s in "${servers[@]}"; do copy_run "$s" >>"$results"; done
done

# RSS of nbdd with 64 connections open (and idle).
read -r rss own shmem < <(/usr/bin/python3 - "$nbdd_uri" "$nbdd_pid" <<'EOF'
import nbd, sys
uri, pid = sys.argv[1], sys.argv[2]
hs = []
for _ in range(64):
    h = nbd.NBD()
    h.connect_uri(uri)
    h.pread(4096, 0)
    hs.append(h)
kib = {}
with open(f"/proc/{pid}/status") as f:
    for line in f:
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            kib[k] = int(v.split()[0])
print(kib["VmRSS"], kib["RssAnon"] + kib["RssFile"], kib["RssShmem"])
EOF
)

{
	printf 'test\tnbdd ops/s\tnbdd MiB/s\tnbdd p50 µs\tqemu-nbd ops/s\tqemu-nbd MiB/s\tqemu-nbd p50 µs\tnbdkit ops/s\tnbdkit MiB/s\tnbdd/qemu-nbd\tp50 nbdd/qemu-nbd\n'
	jq -rs '
		def med(k): map(k) | sort | .[length / 2 | floor];
		def r(x): (x * 100 | round / 100);
		group_by(.test) | sort_by(.[0].test)[] | . as $g |
		($g | map(select(.server == "nbdd"))) as $n | ($g | map(select(.server == "qemu-nbd"))) as $q |
		($g | map(select(.server == "nbdkit"))) as $k |
		(if ($n[0].test | startswith("randr") or startswith("randw")) then "ops" else "mib" end) as $unit |
		(if $unit == "ops" then ($n | med(.ops_per_sec)) / ($q | med(.ops_per_sec)) else ($n | med(.mib_per_sec)) / ($q | med(.mib_per_sec)) end) as $ratio |
		"\($n[0].test)\t\($n | med(.ops_per_sec) | floor)\t\($n | med(.mib_per_sec) | r(.))\t\($n | med(.p50_us) | r(.))\t" +
		"\($q | med(.ops_per_sec) | floor)\t\($q | med(.mib_per_sec) | r(.))\t\($q | med(.p50_us) | r(.))\t" +
		"\($k | med(.ops_per_sec) | floor)\t\($k | med(.mib_per_sec) | r(.))\t\(r($ratio))\t" +
		(if ($q | med(.p50_us)) > 0 then "\(r(($n | med(.p50_us)) / ($q | med(.p50_us))))" else "-" end)' "$results"
} | column -t -s $'\t'
echo "nbdd with 64 connections open: VmRSS $((rss / 1024)) MiB, of which its own (RssAnon + RssFile) $((own / 1024)) MiB and the segment's pages it touched (RssShmem) $((shmem / 1024)) MiB"
if [[ -n $out ]]; then
	jq -s --argjson rss "$rss" --argjson own "$own" --argjson shm "$shmem" '{runs: ., nbdd_64_connections_kib: {vm_rss: $rss, own: $own, shmem: $shm}}' "$results" >"$out"
fi
