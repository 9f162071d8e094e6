#!/bin/bash
# bench/shared.sh - ekmfs shared mode against gocryptfs -sharedstorage, on
# one GlusterFS volume.
#
# Owns: the benchmark row of issue 15. It starts glusterd if none runs,
# makes a replica-2 GlusterFS volume on this host (set up as docs/SHARED.md
# says: no client caching), mounts it with the GlusterFS FUSE client, and
# runs the same workloads through ekmfs -o shared and through gocryptfs
# -sharedstorage, each over a fresh directory of that volume: sequential
# write and read, untar of a source tree, md5sum of it. One table. Not a
# test: the figures depend on the machine (and on its neighbours).
#
#   sudo bench/shared.sh [BUILD_DIR]   (env: BENCH_MIB=256 file size of the
#                                       sequential workloads, BENCH_TREE=
#                                       /usr/include the tree to untar)
#
# Divisions: setup / GlusterFS / file systems / workloads / the table.
set -u -o pipefail

# ---- setup -------------------------------------------------------------------
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
BUILD=$(realpath "${1:-$REPO/build}")
MIB=${BENCH_MIB:-256}
TREE=${BENCH_TREE:-/usr/include}
W=$(mktemp -d /tmp/ekmfs-bench-shared.XXXXXX)
VOL=ekmfsbench$$
HOST=$(hostname)
GL=$W/gluster            # the GlusterFS client mount
MNT=$W/mnt
PID=""
STARTED_GLUSTERD=""
declare -A R

die() { echo "bench/shared.sh: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (mounts, drop_caches)"
[ -x "$BUILD/ekmfs" ] || die "no ekmfs in $BUILD (build first, or give the build directory)"
command -v glusterd >/dev/null || die "GlusterFS is not installed (tools/install-deps.sh)"
command -v gocryptfs >/dev/null || die "gocryptfs is not installed (bench/install-deps.sh)"

cleanup() {
	unmount_fs
	mountpoint -q "$GL" && umount "$GL"
	gluster --mode=script volume stop "$VOL" force >/dev/null 2>&1
	gluster --mode=script volume delete "$VOL" >/dev/null 2>&1
	[ -n "$STARTED_GLUSTERD" ] && kill "$(cat /run/ekmfs-bench-glusterd.pid)" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$2"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---- GlusterFS -------------------------------------------------------------------
if ! pgrep -x glusterd >/dev/null; then
	glusterd -p /run/ekmfs-bench-glusterd.pid || die "glusterd does not start"
	STARTED_GLUSTERD=1
	for _ in $(seq 60); do gluster --mode=script volume list >/dev/null 2>&1 && break; sleep 0.5; done
fi
mkdir -p "$W/b1" "$W/b2" "$GL" "$MNT"
gluster --mode=script volume create "$VOL" replica 2 "$HOST:$W/b1" "$HOST:$W/b2" force >/dev/null ||
	die "gluster volume create failed"
for opt in stat-prefetch quick-read io-cache read-ahead readdir-ahead open-behind write-behind nl-cache; do
	gluster --mode=script volume set "$VOL" "performance.$opt" off >/dev/null || die "volume set $opt"
done
gluster --mode=script volume start "$VOL" >/dev/null || die "gluster volume start failed"
mount -t glusterfs -o attribute-timeout=0,entry-timeout=0,negative-timeout=0,direct-io-mode=enable \
	"$HOST:/$VOL" "$GL" || die "mount -t glusterfs failed"

say "making the source-tree tarball ($TREE)"
tar -cf "$W/tree.tar" -C "$(dirname "$TREE")" "$(basename "$TREE")" 2>/dev/null
NFILES=$(tar -tf "$W/tree.tar" | grep -vc '/$')
TARMB=$(($(stat -c %s "$W/tree.tar") / 1000000))

# ---- file systems ------------------------------------------------------------------
wait_mounted() {
	for _ in $(seq 400); do
		mountpoint -q "$MNT" && return 0
		sleep 0.05
	done
	die "$1 did not mount"
}

mount_fs() {      # system
	local back=$GL/$1
	mkdir -p "$back"
	case $1 in
	gocryptfs)
		echo bench >"$W/gc.pass"
		gocryptfs -q -init -scryptn 10 -passfile "$W/gc.pass" "$back" >/dev/null ||
			die "gocryptfs -init failed"
		gocryptfs -q -fg -sharedstorage -passfile "$W/gc.pass" -allow_other "$back" "$MNT" \
			2>"$W/gc.log" &
		PID=$!; wait_mounted "$1" ;;
	ekmfs)
		mkdir -p -m 700 "$W/keys"
		printf '[daemon]\nshared = true\n[audit]\nfile = %s/audit.log\n[tenant.default]\nkey_file = %s/keys/local.key\n' \
			"$W" "$W" >"$W/ekmfs.ini"
		"$BUILD/ekmfs-admin" -c "$W/ekmfs.ini" init "$back" >/dev/null ||
			die "ekmfs-admin init failed"
		"$BUILD/ekmfs" -c "$W/ekmfs.ini" -f -o allow_other "$back" "$MNT" 2>"$W/ekmfs.log" &
		PID=$!; wait_mounted "$1" ;;
	esac
}

unmount_fs() {
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	PID=""
}

# ---- workloads -----------------------------------------------------------------------
timed() {         # system metric command...
	local sys=$1 metric=$2 t0 t1
	shift 2
	t0=$(now)
	"$@" || die "$sys: $metric: '$*' failed"
	t1=$(now)
	R[$sys,$metric]=$(elapsed "$t0" "$t1")
}

for sys in ekmfs gocryptfs; do
	say "$sys on GlusterFS"
	mount_fs "$sys"
	bytes=$((MIB * 1048576))
	timed "$sys" wr dd if=/dev/zero of="$MNT/big" bs=1M count="$MIB" conv=fsync status=none
	R[$sys,wr]=$(python3 -c "print('%.0f' % ($bytes / 1e6 / ${R[$sys,wr]}))")
	drop_caches
	timed "$sys" rd dd if="$MNT/big" of=/dev/null bs=1M status=none
	R[$sys,rd]=$(python3 -c "print('%.0f' % ($bytes / 1e6 / ${R[$sys,rd]}))")
	rm -f "$MNT/big"
	mkdir "$MNT/t"
	timed "$sys" untar tar -xf "$W/tree.tar" -C "$MNT/t"
	drop_caches
	timed "$sys" md5 sh -c "find '$MNT/t' -type f -print0 | xargs -0 md5sum >/dev/null"
	unmount_fs
done

# ---- the table -------------------------------------------------------------------------
echo "# $(nproc) CPUs, $(uname -r), GlusterFS $(glusterfs --version | head -1 | awk '{print $2}') replica 2 on this host (docs/SHARED.md settings); ekmfs -o shared vs gocryptfs -sharedstorage; tree: $TREE, $NFILES files, $TARMB MB"
echo "| workload | unit | ekmfs shared | gocryptfs -sharedstorage | ekmfs/gocryptfs |"
echo "|---|---|---|---|---|"
row() {   # key name unit sign
	python3 -c '
import sys
k, name, unit, sign, e, g = sys.argv[1:]
e, g = float(e), float(g)
r = e / g if sign == "+" else g / e
fmt = "%.0f" if unit == "MB/s" else "%.2f"
print("| %s | %s | %s | %s | %.2fx %s |" % (name, unit, fmt % e, fmt % g, r, "better" if r >= 1 else "worse"))
' "$1" "$2" "$3" "$4" "${R[ekmfs,$1]}" "${R[gocryptfs,$1]}"
}
row wr "seq write $MIB MiB (dd bs=1M conv=fsync)" MB/s +
row rd "seq read after drop_caches" MB/s +
row untar "untar tree" s -
row md5 "md5sum all files" s -
