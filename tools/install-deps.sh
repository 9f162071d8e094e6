#!/bin/bash
# tools/install-deps.sh - the Debian 12 packages ekmfs needs to build and test.
#
# Owns: the one package list shared by tools/demo.sh and tools/test.sh, and
# installing it with apt-get only when something is missing (so a second run
# is fast and works offline). Before apt-get it waits (bounded) for another
# package manager that holds the dpkg or apt locks, saying which process it
# waits for, and finishes a run that was interrupted (dpkg --configure -a)
# when packages were left half-configured. Every failure says what failed
# and what to do. Run as root. Exit status 0 when all is installed.
#
# Divisions: settings / the dpkg and apt locks / an interrupted run / main.
# The functions can be sourced (tests/integration/test_install_deps.py);
# main runs only when the script is executed.
set -u -o pipefail

# ---- settings ----------------------------------------------------------------

# clang, llvm and libclang-rt-14-dev (libFuzzer, clang's sanitizer runtimes,
# llvm-profdata/llvm-cov): the fuzz harnesses, tests/fuzz/run.sh.
EKMFS_PACKAGES="build-essential meson ninja-build pkg-config libfuse3-dev fuse3 libssl-dev
libjson-c-dev libinih-dev liburing-dev libcurl4-openssl-dev python3 python3-pytest
python3-cryptography attr strace
libsystemd-dev rsync bash-completion man-db groff-base
python3-botocore awscli python3-azure
glusterfs-server glusterfs-client
clang llvm libclang-rt-14-dev"

# dpkg's database and locks (overridable for the tests), and how long to wait
# for another package manager before giving up (seconds).
DPKG_ADMINDIR=${EKMFS_DPKG_ADMINDIR:-/var/lib/dpkg}
LOCK_WAIT=${EKMFS_DPKG_LOCK_WAIT:-300}

say() { echo "dependencies: $*"; }
fail() { echo "tools/install-deps.sh: $*" >&2; }

# ---- the dpkg and apt locks --------------------------------------------------

lock_files() {
	echo "$DPKG_ADMINDIR/lock-frontend" "$DPKG_ADMINDIR/lock"
	if [ "$DPKG_ADMINDIR" = /var/lib/dpkg ]; then
		echo /var/lib/apt/lists/lock /var/cache/apt/archives/lock
	fi
}

# The pid of a process holding a lock on file $1 (dpkg and apt take fcntl
# locks; flock locks count too), from /proc/locks, or nothing. A lock is
# listed as "MAJ:MIN:INODE" of the file system that holds the inode (hex
# major and minor); on overlayfs (containers) that is the upper layer, not
# the device stat reports, so there the inode alone is matched.
lock_holder() {
	local f=$1 dev ino fstype id
	[ -e "$f" ] || return 0
	read -r dev ino < <(stat -L -c '%d %i' "$f") || return 0
	fstype=$(stat -f -L -c '%T' "$f" 2>/dev/null)
	# glibc's dev_t encoding: major bits 8-19 and 32-43, minor 0-7 and 20-31
	id=$(printf '%02x:%02x:%d' $(( ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff) )) \
		$(( (dev & 0xff) | ((dev >> 12) & ~0xff) )) "$ino")
	awk -v id="$id" -v ino=":$ino" -v any="$([ "$fstype" = overlayfs ] && echo 1)" '
		$2 == "->" { next }             # a waiter, not the holder
		{ for (i = 6; i <= NF; i++)
			if ($i == id || (any && substr($i, length($i) - length(ino) + 1) == ino)) {
				print $5; exit
			}
		}' /proc/locks
}

# "pid N: NAME" of the first holder of any lock, or nothing.
package_manager() {
	local f pid
	for f in $(lock_files); do
		pid=$(lock_holder "$f")
		if [ -n "$pid" ]; then
			if [ "$pid" -gt 0 ] 2>/dev/null; then
				echo "pid $pid: $(cat "/proc/$pid/comm" 2>/dev/null || echo '?')"
			else
				echo "an open file description lock on $f"
			fi
			return 0
		fi
	done
}

# Wait up to LOCK_WAIT seconds until no package manager holds the locks,
# saying once per holder whom we wait for. 0 when free, 1 when it is not.
wait_for_package_manager() {
	local waited=0 holder said=""
	while holder=$(package_manager); [ -n "$holder" ]; do
		if [ "$waited" -ge "$LOCK_WAIT" ]; then
			fail "another package manager ($holder) still holds the dpkg/apt lock" \
				"after ${LOCK_WAIT} s; let it finish (or stop it), then run this again"
			return 1
		fi
		if [ "$holder" != "$said" ]; then
			say "waiting for another package manager ($holder) to finish" \
				"(up to ${LOCK_WAIT} s)..."
			said=$holder
		fi
		sleep 1
		waited=$((waited + 1))
	done
	[ -z "$said" ] || say "the other package manager has finished"
	return 0
}

# ---- an interrupted run ------------------------------------------------------

# Packages an interrupted dpkg run left unfinished (one per line).
unfinished_packages() {
	dpkg-query --admindir="$DPKG_ADMINDIR" -W -f='${Status} ${Package}\n' 2>/dev/null |
		awk '$3 ~ /^(half-configured|unpacked|triggers-awaited|triggers-pending)$/ { print $4 }'
}

# Finish what an interrupted run left (dpkg --configure -a), so apt-get does
# not refuse with "dpkg was interrupted". 0 when nothing is left unfinished.
finish_interrupted_run() {
	local left
	left=$(unfinished_packages | tr '\n' ' ')
	[ -n "$left" ] || return 0
	say "an earlier package run was interrupted and left these unfinished: ${left% };" \
		"finishing it with dpkg --configure -a"
	wait_for_package_manager || return 1
	if ! DEBIAN_FRONTEND=noninteractive dpkg --admindir="$DPKG_ADMINDIR" --configure -a; then
		fail "dpkg --configure -a failed (see above): repair the package state" \
			"(apt-get -f install), then run this again"
		return 1
	fi
	left=$(unfinished_packages | tr '\n' ' ')
	if [ -n "$left" ]; then
		fail "dpkg --configure -a left ${left% } unfinished (see above): repair them" \
			"(apt-get -f install), then run this again"
		return 1
	fi
	say "the interrupted run is finished"
}

# ---- main ----------------------------------------------------------------------

main() {
	local missing="" p
	for p in $EKMFS_PACKAGES; do
		dpkg-query --admindir="$DPKG_ADMINDIR" -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		say "all installed"
		return 0
	fi
	say "installing$missing"
	if [ "$(id -u)" -ne 0 ]; then
		fail "installing packages needs root: sudo $0"
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	wait_for_package_manager || return 1
	finish_interrupted_run || return 1
	wait_for_package_manager || return 1
	if ! apt-get update -q -o DPkg::Lock::Timeout="$LOCK_WAIT"; then
		fail "apt-get update failed (see above): check the network and /etc/apt/sources.list"
		return 1
	fi
	# shellcheck disable=SC2086 # the list is meant to split into words
	if ! apt-get install -y -q -o DPkg::Lock::Timeout="$LOCK_WAIT" $EKMFS_PACKAGES; then
		fail "apt-get install failed (see above); the packages ekmfs needs:" $EKMFS_PACKAGES
		return 1
	fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
	exit $?
fi
