#!/usr/bin/env bash
# install-deps.sh: install the Debian packages the build and the tests use,
# when missing (as root, with apt-get). Without root it names what is
# missing and exits 0: the tests that need those packages skip themselves.
#
#   ceph-mon, ceph-osd  the throw-away test cluster (tools/ceph-test-cluster);
#                       they bring ceph-common (ceph, rados CLIs), ceph-base
#                       (monmaptool), python3-rados and librados2
#   librados-dev        rados/librados.h, for go-ceph's cgo build (radosd)
#   libradospp-dev      rados/librados.hpp, for the RADOS driver's server-side copy
#   g++                 the RADOS driver has one C++ file (cgo)
#   jq                  the bench/ scripts read JSON results
#   fio                 the anchor bench/filed.sh compares filed with, and an
#                       NBD client (its nbd engine) of the nbdd tests
#   qemu-utils          qemu-io, qemu-img, qemu-nbd: NBD clients of the tests,
#                       and the anchor of bench/nbd.sh
#   libnbd-bin, python3-libnbd   nbdinfo, nbdcopy, nbdsh
#   nbdkit              the other anchor of bench/nbd.sh
#   linux-image-cloud-amd64, busybox-static, qemu-system-x86
#                       the VM that boots from a volume (TestVMBoot)
#
# A host that only runs radosd needs librados2 alone.
#
#   install-deps.sh [--list | --check]
set -euo pipefail

PACKAGES=(ceph-mon ceph-osd librados-dev libradospp-dev g++ jq fio qemu-utils libnbd-bin python3-libnbd nbdkit linux-image-cloud-amd64 busybox-static qemu-system-x86)

missing() {
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
	done
}

case ${1:-} in
--list)
	echo "${PACKAGES[*]}"
	;;
--check)
	m=$(missing | tr '\n' ' ')
	[[ -z $m ]] || { echo "install-deps.sh: missing packages: $m(run tools/install-deps.sh as root)" >&2; exit 1; }
	;;
"")
	command -v dpkg-query >/dev/null || { echo "install-deps.sh: not a Debian system; install by hand: ${PACKAGES[*]}" >&2; exit 0; }
	m=$(missing | tr '\n' ' ')
	[[ -z $m ]] && exit 0
	if [[ $(id -u) != 0 ]]; then
		echo "install-deps.sh: missing $m(need root to install); the tests that use them will skip" >&2
		exit 0
	fi
	echo "install-deps.sh: installing $m"
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $m >/dev/null
	;;
-h | --help)
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	echo "install-deps.sh: unknown argument $1 (try --help)" >&2
	exit 2
	;;
esac
