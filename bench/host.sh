# host.sh is sourced by the bench scripts: host_conf writes the config of a
# throw-away host whose data directory, run directory and segment live
# under DIR (on tmpfs for the benchmarks): filed on port 1, mapperd on 2,
# vlmcd on 3, and nbdd with the argument "nbdd".
#
#   host_conf FILE DIR SEGMENT [nbdd]
host_conf() {
	local file=$1 dir=$2 seg=$3 roles="blocker mapperd vlmcd"
	[[ ${4:-} == nbdd ]] && roles+=" nbdd"
	mkdir -p "$dir/data" "$dir/run"
	cat >"$file" <<CONF
[ARCHIPELAGO]
RUN_DIR = $dir/run
LOG_DIR = $dir/run
[XSEG]
SEGMENT_NAME = $seg
SEGMENT_SIZE = 512
[PEERS]
ROLES = $roles
[blocker]
type = file_blocker
portno_start = 1
archip_dir = $dir/data
[mapperd]
portno_start = 2
portno_end = 2
blockerb_port = 1
blockerm_port = 1
[vlmcd]
portno_start = 3
portno_end = 3
blocker_port = 1
mapper_port = 2
CONF
	[[ ${4:-} == nbdd ]] && printf '[nbdd]\ntype = nbdd\n' >>"$file"
	return 0
}
