#!/bin/bash
# bench/install-deps.sh - the Debian 12 packages bench/run.sh needs on top of
# tools/install-deps.sh: fio, gocryptfs (the reference to beat) and the
# libfuse examples (passthrough_ll, the plaintext FUSE baseline). Kept apart
# so CI does not pay for them. Installs only what is missing; run as root.
set -u -o pipefail

BENCH_PACKAGES="fio gocryptfs libfuse3-dev fuse3 build-essential pkg-config tar"

missing=""
for p in $BENCH_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "bench dependencies: all installed"
	exit 0
fi
echo "bench dependencies: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get update -q && apt-get install -y -q $missing
