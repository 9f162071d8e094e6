#!/bin/bash
# bench/rotate.sh - how fast ekmfs-rotate re-wraps file headers.
#
# Owns: the benchmark behind the figures in docs/ROTATION.md: a volume on
# tmpfs (/dev/shm) filled with ekmfs-rotate-benchgen (real headers made by the
# core library, as the daemon makes them), then timed `ekmfs-rotate kek`
# runs (new KEK version + re-wrap of every header + the confirming re-scan
# pass + retiring the old version: the whole command, process start to exit).
#
# Usage: bench/rotate.sh [BUILD_DIR] [FILES] [JOBS]
#   defaults: build 100000 2. Run as root or as the owner of /dev/shm.
# Scenarios: FILES small files (1 KiB, real content); 10000 files of 1 MiB
# with real content; FILES files of 1 MiB with sparse content (--sparse:
# real header, hole for the blocks: rotation never reads them, and 100,000
# real 1 MiB files would need 100 GiB of RAM on tmpfs).
set -eu -o pipefail

BUILD=$(cd "${1:-build}" && pwd)
FILES=${2:-100000}
JOBS=${3:-2}
ROTATE=$BUILD/ekmfs-rotate
GEN=$BUILD/tools/rotate/ekmfs-rotate-benchgen
ADMIN=$BUILD/ekmfs-admin
for b in "$ROTATE" "$GEN" "$ADMIN"; do
	[ -x "$b" ] || { echo "bench/rotate.sh: missing $b (build first)" >&2; exit 1; }
done

WORK=$(mktemp -d /dev/shm/ekmfs-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

now() { date +%s.%N; }

# scenario NAME COUNT SIZE [--sparse]
scenario() {
	local name=$1 count=$2 size=$3 sparse=${4:-}
	local dir=$WORK/$name t0 t1 out secs rate
	mkdir -p "$dir/keys" && chmod 700 "$dir/keys"
	printf '[tenant.default]\nkey_file = %s/keys/local.key\n' "$dir" >"$dir/ekmfs.ini"
	"$ADMIN" -c "$dir/ekmfs.ini" init "$dir/backing" >/dev/null 2>&1
	t0=$(now)
	# shellcheck disable=SC2086 # $sparse is empty or one flag
	"$GEN" -c "$dir/ekmfs.ini" $sparse "$dir/backing" "$count" "$size"
	t1=$(now)
	printf '%-28s generated %7d files in %6.2f s\n' "$name" "$count" \
		"$(echo "$t1 - $t0" | bc)" >&2
	for run in 1 2; do
		sync
		t0=$(now)
		out=$("$ROTATE" -c "$dir/ekmfs.ini" kek -q --json --jobs "$JOBS" "$dir/backing")
		t1=$(now)
		secs=$(echo "$t1 - $t0" | bc)
		rate=$(echo "$count / $secs" | bc)
		echo "$out" | grep -q '"remaining_on_old_versions":0' ||
			{ echo "bench/rotate.sh: $name: run incomplete: $out" >&2; exit 1; }
		printf '| %-26s | %7d | %2d | %d | %6.2f s | %7d files/s |\n' "$name" "$count" \
			"$JOBS" "$run" "$secs" "$rate"
	done
	rm -rf "$dir"
}

echo "| scenario                   |   files | jobs | run | time | rate |"
echo "|----------------------------|---------|------|-----|------|------|"
scenario "small-1KiB" "$FILES" 1024
scenario "1MiB-real-content" 10000 1048576
scenario "1MiB-sparse-content" "$FILES" 1048576 --sparse
