#!/bin/bash
# tools/install-deps.sh - the Debian 12 packages ekmfs needs to build and test.
#
# Owns: the one package list shared by tools/demo.sh and tools/test.sh, and
# installing it with apt-get only when something is missing (so a second run
# is fast and works offline). Run as root. Exit status 0 when all is installed.
set -u -o pipefail

EKMFS_PACKAGES="build-essential meson ninja-build pkg-config libfuse3-dev fuse3 libssl-dev
libjson-c-dev libinih-dev liburing-dev libcurl4-openssl-dev python3 python3-pytest
python3-cryptography attr strace
libsystemd-dev rsync bash-completion man-db groff-base
python3-botocore awscli python3-azure"

missing=""
for p in $EKMFS_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "dependencies: all installed"
	exit 0
fi
echo "dependencies: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # the list is meant to split into words
apt-get update -q && apt-get install -y -q $EKMFS_PACKAGES
