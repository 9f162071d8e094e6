#!/bin/bash
# tools/ci-tsan.sh - the daemon and tools under ThreadSanitizer, through the
# integration tests that run threads against one another: concurrent
# readers and writers of one file, writers of neighbouring and overlapping
# blocks, the random-operations model with threads, concurrent namespace
# operations and appends, rotation while a writer and a reader run, and
# shared mode on GlusterFS (lease recalls: fsx with a reader on the other
# host, a file held open handed over, a volume-wide lock and unlock).
#
# Usage: tools/ci-tsan.sh [-b BUILD] [-o RESULTS]
#   -b BUILD    build directory (default build-tsan; set up when missing:
#               gcc, --buildtype=debugoptimized -Db_sanitize=thread)
#   -o RESULTS  also write one "tsan ok|FAILED" line there (tools/test.sh)
# Run as root (FUSE mounts), like tools/test.sh.
#
# Every instrumented process (ekmfs, ekmfs-admin, ekmfs-rotate) writes its
# reports to BUILD/tsan-logs/tsan.PID (TSAN_OPTIONS log_path), since a
# daemon's stderr is not what a test checks. The run fails when a test
# fails or any report was written; the reports are printed. No
# suppressions: a report is a bug to fix, not to hide.
#
# Divisions: arguments / build / run / verdict.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
PYTHON=/usr/bin/python3

# ---- arguments -----------------------------------------------------------------
BUILD=build-tsan
RESULTS=
while [ $# -gt 0 ]; do
	case $1 in
	-b) BUILD=$2; shift 2 ;;
	-o) RESULTS=$2; shift 2 ;;
	-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "tools/ci-tsan.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
	esac
done
verdict() {                     # ok|FAILED, exit status
	[ -n "$RESULTS" ] && echo "tsan $1" >>"$RESULTS"
	exit "$2"
}

# ---- build ---------------------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
	CC=gcc meson setup "$BUILD" --buildtype=debugoptimized -Db_sanitize=thread \
		-Db_lundef=false >"$BUILD.setup.log" 2>&1 ||
		{ cat "$BUILD.setup.log" >&2; verdict FAILED 1; }
	rm -f "$BUILD.setup.log"
fi
ninja -C "$BUILD" ekmfs ekmfs-admin ekmfs-rotate || verdict FAILED 1

# ---- run -----------------------------------------------------------------------
LOGS=$REPO/$BUILD/tsan-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
TESTS=(
	tests/integration/test_dataplane.py::test_threads_random_ops_match_model
	tests/integration/test_dataplane.py::test_writers_to_different_blocks
	tests/integration/test_dataplane.py::test_writers_to_overlapping_blocks
	tests/integration/test_posix.py::test_concurrent_writers_different_blocks
	tests/integration/test_posix.py::test_concurrent_writers_same_block_disjoint_ranges
	tests/integration/test_posix.py::test_many_threads_read_one_file
	tests/integration/test_posix.py::test_readers_during_writes_see_whole_blocks
	tests/integration/test_posix.py::test_hard_link_open_concurrently
	tests/integration/test_posix.py::test_concurrent_namespace_operations
	tests/integration/test_posix.py::test_concurrent_appends_are_atomic
	tests/integration/test_rotate.py::test_rotate_while_writer_and_reader_run
	tests/integration/test_gluster.py::test_shared_fsx_while_the_other_host_reads
	tests/integration/test_gluster.py::test_shared_file_held_open_is_handed_over
	tests/integration/test_gluster.py::test_shared_unlock_of_one_tenant_while_all_are_locked
)
# halt_on_error=0: one report must not take the mount down under the test
# (the verdict reads the logs; a daemon that reported also exits 66, which
# the mount fixtures' teardown reports too); history_size=4 keeps the
# second stack of a race in long runs. EKMFS_SLOW: the tests' timeouts x4,
# as for ASan (TSan runs the daemon 5-15 times slower); the hang guard
# 300 s x4 per test (test_writers_to_different_blocks[odirect], 8 MiB
# rewritten under two O_DIRECT readers, ran past the default 120 s x4 on a
# 2-core machine at load 20).
TSAN_OPTIONS="log_path=$LOGS/tsan halt_on_error=0 history_size=4 second_deadlock_stack=1" \
EKMFS_SLOW=1 EKMFS_TEST_TIMEOUT=${EKMFS_TEST_TIMEOUT:-300} EKMFS_BUILD="$REPO/$BUILD" \
	timeout -k 30 2400 \
	"$PYTHON" -m pytest "${TESTS[@]}" -p no:cacheprovider -q -ra
rc=$?

# ---- verdict -------------------------------------------------------------------
reports=$(find "$LOGS" -type f -name 'tsan.*' | sort)
if [ -n "$reports" ]; then
	echo "tools/ci-tsan.sh: ThreadSanitizer reports:" >&2
	for f in $reports; do
		echo "---- $f" >&2
		cat "$f" >&2
	done
	verdict FAILED 1
fi
if [ $rc != 0 ]; then
	echo "tools/ci-tsan.sh: the tests failed under $BUILD (pytest exit $rc)" >&2
	verdict FAILED 1
fi
echo "tools/ci-tsan.sh: ${#TESTS[@]} tests clean under ThreadSanitizer"
verdict ok 0
