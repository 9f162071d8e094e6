#!/bin/bash
# bench/scale.sh - ekmfs at a million files (issue 17).
#
# Owns: the scale run behind the figures in docs/PERFORMANCE.md ("Scale"):
# FILES small files created through a mount, half in a tree (directories of
# 1000) and half in one flat directory; then a remount (the kernel forgets
# every inode), `find` + stat of everything, a sample read, `ekmfs-admin
# status`, `verify`, `backup-manifest`, `ekmfs-rotate kek` and a last
# remount that counts the files again. Each step reports its time, rate and
# the peak RSS of its tool (/usr/bin/time); the daemon's peak RSS (VmHWM),
# its peak descriptor count (/proc/PID/fd, sampled every second) and its
# bytes per cached inode (RSS growth over the find, divided by the inodes
# the daemon holds afterwards) close the report. Any error fails the run.
#
# Usage: bench/scale.sh [--files N] [--build DIR] [--dir DIR] [--report FILE]
#                       [--nofile N] [--jobs N] [--keep] [--reuse]
#   --files   total files (default 1000000; tests/integration/test_scale.py
#             runs 3000)
#   --dir     work directory (default: a new one under /tmp; use /dev/shm for
#             tmpfs); it is removed at the end
#   --nofile  the daemon's descriptor limit (prlimit; default 4096): far
#             below FILES, so a descriptor per inode would fail
#   --keep    leave the work directory (unmounted) for further runs
#   --reuse   the work directory holds a kept run: skip init and creates
# Run as root. Report lines: STEP COUNT SECONDS RATE/s RSS_KiB.
set -eu -o pipefail

FILES=1000000
BUILD=build
DIR=
REPORT=/dev/stdout
NOFILE=4096
JOBS=2
KEEP=
REUSE=
while [ $# -gt 0 ]; do
	case $1 in
	--files) FILES=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--report) REPORT=$2; shift 2 ;;
	--nofile) NOFILE=$2; shift 2 ;;
	--jobs) JOBS=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--reuse) REUSE=1; KEEP=1; shift ;;
	*) echo "usage: $0 [--files N] [--build DIR] [--dir DIR] [--report FILE]" \
		"[--nofile N] [--jobs N]" >&2; exit 2 ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd)
EKMFS=$BUILD/ekmfs
ADMIN=$BUILD/ekmfs-admin
ROTATE=$BUILD/ekmfs-rotate
for b in "$EKMFS" "$ADMIN" "$ROTATE" /usr/bin/time prlimit; do
	[ -x "$b" ] || command -v "$b" >/dev/null ||
		{ echo "bench/scale.sh: missing $b" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench/scale.sh: run as root" >&2; exit 1; }

if [ -z "$DIR" ]; then
	DIR=$(mktemp -d /tmp/ekmfs-scale-XXXXXX)
else
	mkdir -p "$DIR"
fi
BACK=$DIR/backing MNT=$DIR/mnt CONF=$DIR/ekmfs.ini
PID= SAMPLER=
mkdir -p "$BACK" "$MNT" "$DIR/keys"
chmod 700 "$DIR/keys"
printf '[daemon]\ncontrol_dir = %s/ctl\n[tenant.default]\nkey_file = %s/keys/local.key\n[audit]\nfile = %s/audit.log\n' \
	"$DIR" "$DIR" "$DIR" >"$CONF"

cleanup() {
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
	fi
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	[ -n "$KEEP" ] || rm -rf "$DIR"
}
trap cleanup EXIT

: >"$REPORT" 2>/dev/null || true
report() { printf '%s\n' "$*" >>"$REPORT"; }
now() { date +%s.%N; }

# step NAME COUNT COMMAND...: time it, its peak RSS; fail on error.
step() {
	local name=$1 count=$2 t0 t1 secs rate rss
	shift 2
	t0=$(now)
	if ! /usr/bin/time -f '%M' -o "$DIR/time.out" "$@" >"$DIR/$name.out" 2>"$DIR/$name.err"; then
		echo "bench/scale.sh: $name failed:" >&2
		tail -20 "$DIR/$name.err" "$DIR/$name.out" >&2
		exit 1
	fi
	t1=$(now)
	rss=$(tail -1 "$DIR/time.out")
	secs=$(echo "$t1 - $t0" | bc -l)
	rate=$(echo "$count / $secs" | bc)
	report "$(printf '%-16s %8d %9.2f s %8d/s %8d KiB' "$name" "$count" "$secs" "$rate" "$rss")"
	echo "$name: $count in $(printf %.2f "$secs") s" >&2
}

mount_fs() {
	prlimit --nofile="$NOFILE:$NOFILE" -- "$EKMFS" -c "$CONF" -f -o allow_other \
		"$BACK" "$MNT" 2>>"$DIR/daemon.log" &
	PID=$!
	for _ in $(seq 300); do
		mountpoint -q "$MNT" && break
		kill -0 "$PID" 2>/dev/null || { cat "$DIR/daemon.log" >&2; exit 1; }
		sleep 0.1
	done
	mountpoint -q "$MNT" || { echo "bench/scale.sh: no mount" >&2; exit 1; }
	: >"$DIR/fds"
	(while kill -0 "$PID" 2>/dev/null; do
		ls "/proc/$PID/fd" 2>/dev/null | wc -l >>"$DIR/fds"; sleep 1; done) &
	SAMPLER=$!
}

# The daemon's peak RSS and descriptors of this mount, then unmount.
unmount_fs() {
	local hwm fds
	hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
	kill "$SAMPLER" 2>/dev/null || true
	wait "$SAMPLER" 2>/dev/null || true
	SAMPLER=
	ls "/proc/$PID/fd" | wc -l >>"$DIR/fds"
	fds=$(sort -n "$DIR/fds" | tail -1)
	report "$(printf 'daemon-%-9s peak RSS %d KiB, peak descriptors %d (limit %d)' \
		"$1" "$hwm" "$fds" "$NOFILE")"
	[ "$fds" -lt "$NOFILE" ] || { echo "bench/scale.sh: descriptors unbounded" >&2; exit 1; }
	fusermount3 -u "$MNT"
	wait "$PID" || { echo "bench/scale.sh: ekmfs exited $?" >&2; tail "$DIR/daemon.log" >&2; exit 1; }
	PID=
	if grep -Eq 'EMFILE|ENFILE|Too many open files' "$DIR/daemon.log"; then
		echo "bench/scale.sh: descriptor errors in the daemon's log" >&2; exit 1
	fi
}

rss_of() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

# The daemon's `inodes` answer (control socket), one JSON object.
cat >"$DIR/inodes.py" <<'EOF'
import glob, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(glob.glob(sys.argv[1] + "/*.sock")[0])
s.sendall(b"inodes\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
assert data.startswith(b"ok "), data
print(data[3:].decode().strip())
EOF
inodes_json() { python3 "$DIR/inodes.py" "$DIR/ctl"; }
inodes_now() {
	echo "$(rss_of) $(inodes_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["inodes"])')"
}
# "RSS_KiB INODES" of the daemon every second while it runs (the kernel
# forgets inodes at any time: a dentry past its entry timeout goes when its
# last user lets go; drop_caches, memory pressure).
sample_inodes() {
	while kill -0 "$PID" 2>/dev/null; do
		inodes_now
		sleep 1
	done
}

# create ROOT FIRST COUNT PER_DIR: files of 20-odd bytes, PER_DIR a directory
# (0: all in ROOT).
cat >"$DIR/create.py" <<'EOF'
import os, sys
root, first, count, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
made = None
for i in range(first, first + count):
    d = root if not per else os.path.join(root, "d%05d" % (i // per))
    if d != made:
        os.makedirs(d, exist_ok=True)
        made = d
    fd = os.open(os.path.join(d, "f%07d" % i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"file %d of the scale run\n" % i)
    os.close(fd)
EOF

TREE=$((FILES / 2))
FLAT=$((FILES - TREE))
report "# ekmfs scale run: $FILES files ($TREE in a tree of 1000 per directory, $FLAT flat)," \
	"daemon descriptor limit $NOFILE, $(nproc) CPUs, backing $(stat -f -c %T "$BACK")"
if [ -z "$REUSE" ]; then
	"$ADMIN" -c "$CONF" init "$BACK" >/dev/null
	mount_fs
	step create-tree "$TREE" python3 "$DIR/create.py" "$MNT/tree" 0 "$TREE" 1000
	step create-flat "$FLAT" python3 "$DIR/create.py" "$MNT/flat" "$TREE" "$FLAT" 0
	unmount_fs create
fi

# A fresh daemon: what it costs to hold every inode comes from the find:
# the RSS growth at the sample with the most inodes held, over them.
mount_fs
rss0=$(rss_of)
sample_inodes >"$DIR/inode-samples" &
ISAMPLER=$!
step find-stat "$FILES" bash -c "n=\$(find '$MNT' -type f -printf '%s\n' | wc -l); [ \$n -eq $FILES ]"
inodes_now >>"$DIR/inode-samples"
kill "$ISAMPLER" 2>/dev/null || true
wait "$ISAMPLER" 2>/dev/null || true
inodes_json >"$DIR/inodes.json"
read -r rss1 inodes < <(sort -k2,2n "$DIR/inode-samples" | tail -1)
ibytes=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["inode_bytes"], d["inode_size"], d["descriptors"])' "$DIR/inodes.json")
report "$(printf 'inodes           %8d held by the kernel at most; daemon RSS %d -> %d KiB: %d bytes per inode (now: table %d bytes, %d per inode struct, %d descriptors)' \
	"$inodes" "$rss0" "$rss1" "$(( (rss1 - rss0) * 1024 / (inodes > 0 ? inodes : 1) ))" \
	$ibytes)"
SAMPLE=$(( FILES / 1000 > 10 ? FILES / 1000 : 10 ))
step read-sample "$SAMPLE" bash -c "find '$MNT/tree' '$MNT/flat' -type f | awk 'NR % 1000 == 1' | head -n $SAMPLE | xargs -d '\n' cat >/dev/null"
step status "$FILES" "$ADMIN" -c "$CONF" status "$BACK"
step verify "$FILES" "$ADMIN" -c "$CONF" verify "$BACK"
step backup-manifest "$FILES" "$ADMIN" -c "$CONF" backup-manifest -o "$DIR/manifest" "$BACK"
step rotate-kek "$FILES" "$ROTATE" -c "$CONF" kek -q --jobs "$JOBS" "$BACK"
unmount_fs scan

mount_fs
step remount "$FILES" bash -c "n=\$(find '$MNT' -type f | wc -l); [ \$n -eq $FILES ]"
unmount_fs remount
grep -q "DAMAGED" "$DIR/verify.out" && { echo "bench/scale.sh: verify found damage" >&2; exit 1; }
report "daemon           done: no error, no EMFILE"
