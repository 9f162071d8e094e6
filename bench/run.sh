#!/bin/bash
# bench/run.sh - ekmfs against gocryptfs, plaintext FUSE and the plain disk.
#
# Owns: the one-command benchmark of issue 5. It builds ekmfs (release, in a
# temp dir), libfuse's passthrough_ll example and the codec micro-benchmark,
# then runs the same workloads over a fresh tmpfs backing directory for each
# of: plain (the tmpfs itself), passthrough_ll (plaintext FUSE), gocryptfs,
# ekmfs; and prints one table with the ekmfs/gocryptfs ratios, then the codec
# figures against `openssl speed`. Not a test: figures depend on the machine.
#
#   sudo bench/run.sh            (env: BENCH_GIB=1 file size of 1./2.,
#                                 BENCH_FIO_SECONDS=10, BENCH_ONLY="ekmfs gocryptfs",
#                                 BENCH_EKMFS_THREADS=N FUSE workers, default nproc,
#                                 BENCH_TREE_RUNS=3 runs of 4.-7., median shown)
#
# Divisions: setup / builds / file systems (mount, unmount) / workloads /
# the table / codec.
set -u -o pipefail

# ---- setup -------------------------------------------------------------------
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
GIB=${BENCH_GIB:-1}
FIO_SECONDS=${BENCH_FIO_SECONDS:-10}
TREE_RUNS=${BENCH_TREE_RUNS:-3}
SYSTEMS=${BENCH_ONLY:-"plain passthrough_ll gocryptfs ekmfs"}
W=$(mktemp -d /tmp/ekmfs-bench.XXXXXX)
BACK=$W/back
MNT=$W/mnt
PID=""
declare -A R    # R[system,metric] = value

die() { echo "bench/run.sh: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (mounts, drop_caches)"
bash "$REPO/bench/install-deps.sh" >&2 || die "installing the bench dependencies failed"
bash "$REPO/tools/install-deps.sh" >&2 || die "installing the build dependencies failed"

cleanup() {
	unmount_fs 2>/dev/null
	mountpoint -q "$BACK" && umount "$BACK"
	rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$BACK" "$MNT"

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$2"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---- builds --------------------------------------------------------------------
say "building ekmfs (release) in $W/build"
# -Dwerror=false: at -O3, GCC 12 raises a false -Wnonnull in ops.c's
# do_make_node (symlinkat with the NULL link of mknod, a branch never taken).
meson setup "$W/build" "$REPO" --buildtype=release -Dwerror=false >"$W/meson.log" 2>&1 ||
	{ cat "$W/meson.log" >&2; die "meson setup failed"; }
ninja -C "$W/build" >"$W/ninja.log" 2>&1 || { cat "$W/ninja.log" >&2; die "build failed"; }

say "building passthrough_ll from the libfuse examples"
EX=/usr/share/doc/libfuse3-dev/examples
mkdir -p "$W/pt"
for f in passthrough_ll.c passthrough_helpers.h; do
	if [ -f "$EX/$f.gz" ]; then gunzip -c "$EX/$f.gz" >"$W/pt/$f"; else cp "$EX/$f" "$W/pt/"; fi
done
# shellcheck disable=SC2046 # pkg-config output is a list of flags
gcc -O2 -o "$W/pt/passthrough_ll" "$W/pt/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs) ||
	die "passthrough_ll does not compile"

say "making the source-tree tarball (/usr/include)"
tar -cf "$W/tree.tar" -C /usr include 2>/dev/null
NFILES=$(tar -tf "$W/tree.tar" | grep -vc '/$')
TARMB=$(($(stat -c %s "$W/tree.tar") / 1000000))

# ---- file systems ---------------------------------------------------------------
wait_mounted() {
	for _ in $(seq 200); do
		mountpoint -q "$MNT" && return 0
		sleep 0.05
	done
	die "$1 did not mount"
}

mount_fs() {      # system
	mount -t tmpfs -o size=$((GIB * 2 + 2))g tmpfs "$BACK"
	case $1 in
	plain)
		PID="" ;;
	passthrough_ll)
		"$W/pt/passthrough_ll" -f -o source="$BACK",allow_other "$MNT" 2>"$W/pt.log" &
		PID=$!; wait_mounted "$1" ;;
	gocryptfs)
		echo bench >"$W/gc.pass"
		gocryptfs -q -init -scryptn 10 -passfile "$W/gc.pass" "$BACK" >/dev/null ||
			die "gocryptfs -init failed"
		gocryptfs -q -fg -passfile "$W/gc.pass" -allow_other "$BACK" "$MNT" 2>"$W/gc.log" &
		PID=$!; wait_mounted "$1" ;;
	ekmfs)
		mkdir -p -m 700 "$W/keys"
		# One FUSE worker per CPU: with more idle workers than CPUs each
		# request wakes a cold thread (see docs/PERFORMANCE.md).
		printf '[daemon]\nmax_threads = %s\n[tenant.default]\nkey_file = %s/keys/local.key\n' \
			"${BENCH_EKMFS_THREADS:-$(nproc)}" "$W" >"$W/ekmfs.ini"
		rm -f "$W/keys/local.key"
		"$W/build/ekmfs-admin" -c "$W/ekmfs.ini" init "$BACK" >/dev/null ||
			die "ekmfs-admin init failed"
		"$W/build/ekmfs" -c "$W/ekmfs.ini" -f -o allow_other "$BACK" "$MNT" 2>"$W/ekmfs.log" &
		PID=$!; wait_mounted "$1" ;;
	esac
}

# CPU seconds and peak RSS of the daemon, then unmount.
unmount_fs() {
	local sys=${1:-}
	if [ -n "$PID" ] && [ -n "$sys" ] && [ -r "/proc/$PID/stat" ]; then
		R[$sys,cpu]=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' \
			"/proc/$PID/stat")
		R[$sys,rss]=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status")
	fi
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	[ -n "$PID" ] && wait "$PID" 2>/dev/null
	PID=""
	mountpoint -q "$BACK" && umount "$BACK"
}

# ---- workloads --------------------------------------------------------------------
timed() {         # system metric command...: R[system,metric] = seconds
	local sys=$1 metric=$2 t0 t1
	shift 2
	t0=$(now)
	"$@" || die "$sys: $metric: '$*' failed"
	t1=$(now)
	R[$sys,$metric]=$(elapsed "$t0" "$t1")
}

fio_iops() {      # dir rw -> IOPS
	fio --name=b --directory="$1" --rw="$2" --bs=4k --size=128m --numjobs=2 \
		--ioengine=psync --direct=1 --runtime="$FIO_SECONDS" --time_based \
		--group_reporting --output-format=json 2>/dev/null |
		python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]
print("%.0f" % (j["read"]["iops"] + j["write"]["iops"]))'
}

run_workloads() {  # system dir
	local sys=$1 d=$2 bytes=$((GIB * 1024 * 1024 * 1024))
	timed "$sys" wr dd if=/dev/zero of="$d/big" bs=1M count=$((GIB * 1024)) conv=fsync status=none
	R[$sys,wr]=$(python3 -c "print('%.0f' % ($bytes / 1e6 / ${R[$sys,wr]}))")
	drop_caches
	timed "$sys" rd dd if="$d/big" of=/dev/null bs=1M status=none
	R[$sys,rd]=$(python3 -c "print('%.0f' % ($bytes / 1e6 / ${R[$sys,rd]}))")
	rm -f "$d/big"
	timed "$sys" app dd if=/dev/zero of="$d/app" bs=512 count=131072 oflag=append \
		conv=notrunc,fsync status=none
	R[$sys,app]=$(python3 -c "print('%.1f' % (64 * 1048576 / 1e6 / ${R[$sys,app]}))")
	rm -f "$d/app"
	# The tree workloads take a second or two each, where one neighbour's
	# burst on a shared VM moves a figure by half: each runs TREE_RUNS
	# times (untar, md5sum, ls, rm in turn) and the median counts.
	local run m
	for run in $(seq "$TREE_RUNS"); do
		mkdir "$d/t"
		timed "$sys" "untar$run" tar -xf "$W/tree.tar" -C "$d/t"
		sync
		drop_caches
		timed "$sys" "md5$run" sh -c "find '$d/t' -type f -print0 | xargs -0 md5sum >/dev/null"
		drop_caches
		timed "$sys" "ls$run" sh -c "ls -lR '$d/t' >/dev/null"
		drop_caches
		timed "$sys" "rm$run" rm -rf "$d/t"
	done
	for m in untar md5 ls rm; do
		R[$sys,$m]=$(for run in $(seq "$TREE_RUNS"); do echo "${R[$sys,$m$run]}"; done |
			sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
		R[$sys,$m-spread]=$(for run in $(seq "$TREE_RUNS"); do echo "${R[$sys,$m$run]}"; done |
			sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}')
	done
	mkdir "$d/fio"
	R[$sys,rr]=$(fio_iops "$d/fio" randread)
	rm -rf "$d/fio"; mkdir "$d/fio"
	R[$sys,rw]=$(fio_iops "$d/fio" randwrite)
	rm -rf "$d/fio"
}

for sys in $SYSTEMS; do
	say "$sys"
	mount_fs "$sys"
	if [ "$sys" = plain ]; then run_workloads "$sys" "$BACK"; else run_workloads "$sys" "$MNT"; fi
	unmount_fs "$sys"
done

# ---- the table ----------------------------------------------------------------------
{
	echo "# $(nproc) CPUs, $(uname -r), tmpfs backing; tree: /usr/include, $NFILES files, $TARMB MB, median of $TREE_RUNS runs; ekmfs max_threads=${BENCH_EKMFS_THREADS:-$(nproc)}"
	for sys in $SYSTEMS; do
		for m in wr rd app untar md5 ls rm rr rw cpu rss untar-spread md5-spread ls-spread rm-spread; do
			echo "$sys $m ${R[$sys,$m]:--}"
		done
	done
} | python3 -c '
import sys
rows = [("wr", "1. seq write %s GiB (dd bs=1M conv=fsync)", "MB/s", 1),
        ("rd", "2. seq read after drop_caches", "MB/s", 1),
        ("app", "3. 64 MiB in 512 B appends + fsync", "MB/s", 1),
        ("untar", "4. untar tree", "s", -1),
        ("md5", "5. md5sum all files", "s", -1),
        ("ls", "6. ls -lR", "s", -1),
        ("rm", "7. rm -rf", "s", -1),
        ("rr", "8. fio 4k randread, 2 jobs", "IOPS", 1),
        ("rw", "9. fio 4k randwrite, 2 jobs", "IOPS", 1),
        ("cpu", "10a. daemon CPU time", "s", -1),
        ("rss", "10b. daemon peak RSS", "MiB", -1)]
head = sys.stdin.readline().strip()
v = {}
systems = []
for line in sys.stdin:
    s, m, x = line.split()
    if s not in systems:
        systems.append(s)
    v[s, m] = x
gib = sys.argv[1]
print(head)
cols = ["workload", "unit"] + systems + (["ekmfs/gocryptfs"] if "ekmfs" in systems and "gocryptfs" in systems else [])
print("| " + " | ".join(cols) + " |")
print("|" + "|".join("---" for _ in cols) + "|")
for key, name, unit, sign in rows:
    name = name % gib if "%s" in name else name
    cells = [name, unit] + [v.get((s, key), "-") for s in systems]
    if len(cols) > len(cells):
        try:
            e, g = float(v["ekmfs", key]), float(v["gocryptfs", key])
            r = e / g if sign > 0 else g / e
            cells.append("%.2fx %s" % (r, "better" if r >= 1 else "worse"))
        except (KeyError, ValueError, ZeroDivisionError):
            cells.append("-")
    if key in ("untar", "md5", "ls", "rm", "cpu"):
        cells[2:2 + len(systems)] = ["%.2f" % float(c) if c != "-" else c for c in cells[2:2 + len(systems)]]
    print("| " + " | ".join(cells) + " |")
print()
print("# the tree workloads, fastest-slowest of the runs (s)")
print("| workload | " + " | ".join(systems) + " |")
print("|---|" + "|".join("---" for _ in systems) + "|")
for key, name, unit, sign in rows[3:7]:
    print("| " + name + " | " + " | ".join(v.get((s, key + "-spread"), "-") for s in systems) + " |")
' "$GIB"

# ---- codec -----------------------------------------------------------------------------
echo
echo "# codec, one core (MB/s): ekmfs block seal/open per request size vs openssl speed"
echo "# (best of 3 alternating rounds of each: the VM's neighbours come and go)"
CODEC="$W/build/bench/codec_bench" python3 -c '
import os, subprocess
def openssl(size):
    out = subprocess.run(["openssl", "speed", "-seconds", "1", "-evp", "aes-256-gcm",
                          "-bytes", str(size)], capture_output=True, text=True).stdout
    for l in out.splitlines():
        if l.startswith("AES-256-GCM"):
            return float(l.split()[-1].rstrip("k")) * 1000 / 1e6
    return float("nan")
ours, theirs = {}, {}
for _ in range(3):
    out = subprocess.run([os.environ["CODEC"], "0.6"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        mode, size, mbs = line.split()
        ours[mode, int(size)] = max(ours.get((mode, int(size)), 0.0), float(mbs))
    for size in {s for _, s in ours}:
        theirs[size] = max(theirs.get(size, 0.0), openssl(size))
print("| request | openssl speed | seal | open | seal % | open % | one-shot seal | one-shot open | v1 seal | v1 open | v2/v1 seal | v2/v1 open |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for size in sorted(theirs):
    o = theirs[size]
    s, p = ours["seal", size], ours["open", size]
    s1, p1 = ours["seal-v1", size], ours["open-v1", size]
    print("| %d KiB | %.0f | %.0f | %.0f | %.0f%% | %.0f%% | %.0f | %.0f | %.0f | %.0f | %.0f%% | %.0f%% |" % (
        size // 1024, o, s, p, 100 * s / o, 100 * p / o,
        ours["seal-oneshot", size], ours["open-oneshot", size], s1, p1,
        100 * s / s1, 100 * p / p1))
'
