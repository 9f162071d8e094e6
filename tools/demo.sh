#!/bin/bash
# tools/demo.sh - install, build, create a demo volume and mount it.
#
# Owns: the first command of the README. Installs the dependencies
# (tools/install-deps.sh), builds build/ (meson + ninja), creates the demo
# volume /var/lib/ekmfs/demo with the local key provider and its default key
# file /var/lib/ekmfs/local.key (created by `ekmfs-admin init` if absent), and
# mounts it at /mnt/ekmfs-demo with -o allow_other. Idempotent: an existing
# volume is reused, an existing mount is reported. Writes nothing into the
# volume. Run as root: sudo ./tools/demo.sh
#
# Divisions: setup / dependencies and build / volume / mount / how to use it.
set -u -o pipefail

# ---- setup -------------------------------------------------------------------
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
BACKING=/var/lib/ekmfs/demo
MNT=/mnt/ekmfs-demo
KEY_FILE=/var/lib/ekmfs/local.key       # the built-in default of ekmfs-admin and ekmfs
EKMFS=$REPO/build/ekmfs
ADMIN=$REPO/build/ekmfs-admin

die() { echo "tools/demo.sh: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo ./tools/demo.sh): it installs packages and mounts"

# ---- dependencies and build ---------------------------------------------------------
bash tools/install-deps.sh ||
	die "the build dependencies are not installed (tools/install-deps.sh said why, above)"
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=debugoptimized || die "meson setup failed"
fi
ninja -C build || die "the build failed"
say "built $EKMFS and $ADMIN"

# ---- volume -----------------------------------------------------------------------
if [ -f "$BACKING/.ekmfs/volume.json" ]; then
	say "reusing the demo volume in $BACKING"
else
	mkdir -p "$BACKING" || die "cannot create $BACKING"
	if [ -n "$(ls -A "$BACKING")" ]; then
		die "$BACKING is not empty and not an ekmfs volume; move its contents away first"
	fi
	[ -e "$KEY_FILE" ] && say "using the existing key file $KEY_FILE"
	"$ADMIN" init "$BACKING" || die "ekmfs-admin init $BACKING failed"
	say "created the demo volume in $BACKING"
fi
"$ADMIN" status "$BACKING" || die "ekmfs-admin status $BACKING failed"

# ---- mount -----------------------------------------------------------------------
if is_mounted "$MNT"; then
	say "$MNT is already mounted; nothing to do"
else
	mkdir -p "$MNT" || die "cannot create $MNT"
	"$EKMFS" -o allow_other "$BACKING" "$MNT" || die "mounting $BACKING at $MNT failed"
	for _ in $(seq 50); do is_mounted "$MNT" && break; sleep 0.1; done
	is_mounted "$MNT" || die "ekmfs started but $MNT is not mounted (see the system log)"
	say "mounted $BACKING at $MNT"
fi

# ---- how to use it -------------------------------------------------------------------
cat <<EOT

The demo volume is ready.
  Use it:       cp some-file $MNT/   (modes and owners apply as on any file system;
                chmod/chown the volume root through $MNT to share it)
  Ciphertext:   ls -la $BACKING      (what the disk and your backups see)
  Key file:     $KEY_FILE   (keep a copy: without it the volume cannot be read)
  Status:       $ADMIN status $BACKING
  Check tags:   $ADMIN verify $BACKING
  Unmount:      fusermount3 -u $MNT
  Mount again:  sudo ./tools/demo.sh   (or: $EKMFS -o allow_other $BACKING $MNT)
EOT
