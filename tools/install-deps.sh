#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing. Needs root for
# apt; without it, says what is missing and leaves the tests to skip.
set -euo pipefail

# command-or-file : package
needs=(
	"ceph-mon:ceph-mon"
	"ceph-osd:ceph-osd"
	"/usr/include/rados/librados.h:librados-dev"
	"jq:jq"
)

missing=()
for n in "${needs[@]}"; do
	what=${n%%:*} pkg=${n#*:}
	if [[ $what == /* ]]; then [[ -e $what ]] && continue
	else command -v "$what" >/dev/null 2>&1 && continue; fi
	missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
	echo "install-deps: missing ${missing[*]} (need root and apt); the tests that use them will skip" >&2
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
