#!/bin/bash
# tools/test.sh - install, build and run every ekmfs test; THE test command.
#
# Owns: the dependency install (apt-get, skipped when all is present), the
# two builds (build/: debugoptimized; build-asan/: ASan+UBSan; plus build-fault/
# with I/O fault injection and crash recording for tests/integration/test_faults.py
# and test_crash.py), the compile checks of the other build types with -Werror
# (build-check/: release, debug, ASan+UBSan at -O0 and -O1; one summary item
# each), the unit tests
# (meson test, suite unit) and the integration suite (pytest through a real
# FUSE mount) against both builds, and the final summary whose last line is
# "N passed, M failed" summed over all runs. Exits non-zero when anything
# failed or failed to build. Idempotent; run as root (FUSE mounts, setuid
# test children): sudo ./tools/test.sh
#
# Divisions: setup / dependencies / builds / unit tests / integration tests /
# summary.
set -u -o pipefail

# ---- setup -------------------------------------------------------------------
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
PYTHON=/usr/bin/python3          # Debian's python3 with python3-pytest, not a pyenv one
PYTEST_TIMEOUT=${EKMFS_PYTEST_TIMEOUT:-1800}
STEP_FAILURES=0                  # builds or runs that produced no test results
declare -a RUNS=()               # "label|kind|file" for the summary

say() { printf '\n==> %s\n' "$*"; }
step_failed() { echo "tools/test.sh: $*" >&2; STEP_FAILURES=$((STEP_FAILURES + 1)); }

if [ "$(id -u)" -ne 0 ]; then
	echo "tools/test.sh: run as root (sudo ./tools/test.sh): the tests mount FUSE file systems" >&2
	exit 1
fi

# Mounts left by an interrupted earlier run would make fusermount3 and rm fail.
# Test mounts whose daemon is gone (a killed run): a stat of the mountpoint
# fails (ENOTCONN) or hangs. Mounts of another test run that is still going
# on this machine answer, and are left alone.
cleanup_stale_mounts() {
	awk '$3 == "fuse.ekmfs" && $2 ~ /^\/tmp\/ekmfs-it-/ { print $2 }' /proc/self/mounts |
	while read -r m; do
		timeout 5 stat -- "$m" >/dev/null 2>&1 && continue
		fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
}
# What an interrupted GlusterFS test (tests/integration/gluster.py) leaves:
# its client mounts, its volumes, the glusterd it started. Only when no
# other test run is going on (no live ekmfs test mount).
cleanup_stale_gluster() {
	grep -q ' /tmp/ekmfs-it-[^ ]* fuse.ekmfs ' /proc/self/mounts && return 0
	awk '$3 == "fuse.glusterfs" && $2 ~ /^\/tmp\/ekmfs-it-gluster-/ { print $2 }' \
		/proc/self/mounts | while read -r m; do umount -l "$m" 2>/dev/null; done
	if command -v gluster >/dev/null && [ -s /run/ekmfs-test-glusterd.pid ]; then
		for v in $(timeout 20 gluster --mode=script volume list 2>/dev/null | grep '^ekmfs-'); do
			timeout 30 gluster --mode=script volume stop "$v" force >/dev/null 2>&1
			timeout 30 gluster --mode=script volume delete "$v" >/dev/null 2>&1
		done
		kill "$(cat /run/ekmfs-test-glusterd.pid)" 2>/dev/null
		rm -f /run/ekmfs-test-glusterd.pid
	fi
	rm -rf /tmp/ekmfs-bench-shared.* 2>/dev/null
	return 0
}
cleanup_stale_gluster
cleanup_stale_mounts

# ---- dependencies ----------------------------------------------------------------
say "dependencies"
bash tools/install-deps.sh || {
	echo "tools/test.sh: the dependencies are not installed (tools/install-deps.sh said why, above)" >&2
	echo "0 passed, 1 failed"
	exit 1
}
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true

# ---- builds ------------------------------------------------------------------------
setup_build() {             # dir, meson options...
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
	else
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
	fi || { cat "$dir.setup.log" >&2; return 1; }
}

BUILD_OK=()
say "building build/ (debugoptimized)"
if setup_build build --buildtype=debugoptimized && ninja -C build; then
	BUILD_OK+=(build)
else
	step_failed "build/ failed to build"
fi
say "building build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)"
if setup_build build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined \
	-Db_lundef=false && ninja -C build-asan; then
	BUILD_OK+=(build-asan)
else
	step_failed "build-asan/ failed to build"
fi
rm -f build.setup.log build-asan.setup.log

# Compile checks: every other build type the README names must build with
# -Werror too, since gcc warns differently at each optimisation level (a
# release build once failed on a -Wnonnull only -O3 inlining reveals, a
# debug one on a -Wformat-truncation only -O0 sees). Compile only: the
# tests run against build/ and build-asan/ above. Each check counts as one
# passed or failed item in the summary.
COMPILE_CHECKS=(
	"release|--buildtype=release"
	"debug|--buildtype=debug"
	"asan-O0|--buildtype=debug -Doptimization=0 -Db_sanitize=address,undefined -Db_lundef=false"
	"asan-O1|--buildtype=debug -Doptimization=1 -Db_sanitize=address,undefined -Db_lundef=false"
)
mkdir -p build-check
: >build-check/results.txt
for check in "${COMPILE_CHECKS[@]}"; do
	name=${check%%|*}
	read -r -a opts <<<"${check#*|}"
	dir=build-check/$name
	say "compile check: $name (${opts[*]} --werror)"
	if setup_build "$dir" "${opts[@]}" --werror &&
		ninja -C "$dir" >"$dir.log" 2>&1; then
		echo "$name ok" >>build-check/results.txt
	else
		[ -f "$dir.log" ] && grep -E -A3 'error|FAILED' "$dir.log" | head -40 >&2
		echo "$name FAILED" >>build-check/results.txt
		echo "tools/test.sh: the $name build failed (log: $dir.log)" >&2
	fi
	rm -f "$dir.setup.log"
done
RUNS+=("compile checks|compile|build-check/results.txt")

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# ---- unit tests ----------------------------------------------------------------------
for b in "${BUILD_OK[@]}"; do
	say "unit tests ($b)"
	rm -f "$b/meson-logs/testlog.json"
	meson test -C "$b" --suite unit --print-errorlogs
	if [ -s "$b/meson-logs/testlog.json" ]; then
		RUNS+=("unit ($b)|meson|$b/meson-logs/testlog.json")
	else
		step_failed "meson test in $b produced no test log"
	fi
done

# ---- integration tests -------------------------------------------------------------------
for b in "${BUILD_OK[@]}"; do
	say "integration tests ($b)"
	junit="$b/integration-junit.xml"
	rm -f "$junit"
	EKMFS_BUILD="$REPO/$b" timeout -k 30 "$PYTEST_TIMEOUT" \
		"$PYTHON" -m pytest tests/integration -p no:cacheprovider -q -ra \
		--junitxml="$junit" -o junit_family=xunit2
	rc=$?
	cleanup_stale_mounts
	if [ -s "$junit" ]; then
		RUNS+=("integration ($b)|junit|$junit")
	else
		step_failed "pytest against $b wrote no results (exit $rc)"
	fi
	[ "$rc" -eq 124 ] && step_failed "pytest against $b timed out after ${PYTEST_TIMEOUT}s"
	[ "$rc" -eq 5 ] && step_failed "pytest against $b collected no tests"
done

# A third build compiles the I/O fault injection (src/io/fault.c) and the
# crash recorder (src/io/record.c) in; only the fault and crash tests run
# against it (the other builds skip them): the fault tests take seconds, the
# crash-point tests (2,000 points) about two minutes (docs/CRASH.md).
say "building build-fault/ (-Dfault_injection=true) for the I/O fault and crash tests"
if setup_build build-fault --buildtype=debugoptimized -Dfault_injection=true &&
	ninja -C build-fault ekmfs ekmfs-admin ekmfs-rotate; then
	junit=build-fault/integration-junit.xml
	rm -f "$junit" build-fault.setup.log
	EKMFS_BUILD="$REPO/build-fault" timeout -k 30 600 \
		"$PYTHON" -m pytest tests/integration/test_faults.py tests/integration/test_crash.py \
		-p no:cacheprovider -q -ra \
		--junitxml="$junit" -o junit_family=xunit2
	cleanup_stale_mounts
	if [ -s "$junit" ]; then
		RUNS+=("fault injection (build-fault)|junit|$junit")
	else
		step_failed "pytest against build-fault wrote no results"
	fi
else
	step_failed "build-fault/ failed to build"
fi

# Every parser's libFuzzer harness for a bounded time under ASan+UBSan
# (tests/fuzz/README.md; clang builds build-fuzz/ itself): a crash, leak or
# UB report fails the run. The long version: tests/fuzz/run.sh -t 3600.
say "fuzzing (tests/fuzz/run.sh: 20 s per harness, ASan+UBSan)"
: >build-fuzz.results
tests/fuzz/run.sh -t 20 -o build-fuzz.results ||
	echo "tools/test.sh: a fuzz harness failed (above)" >&2
cleanup_stale_mounts
[ -s build-fuzz.results ] || echo "fuzzing FAILED" >build-fuzz.results
RUNS+=("fuzzing|compile|build-fuzz.results")

# The threaded integration tests with the daemon and tools built under
# ThreadSanitizer (tools/ci-tsan.sh): any report fails the run.
say "ThreadSanitizer (tools/ci-tsan.sh)"
: >build-tsan.results
tools/ci-tsan.sh -o build-tsan.results ||
	echo "tools/test.sh: the ThreadSanitizer run failed (above)" >&2
cleanup_stale_mounts
[ -s build-tsan.results ] || echo "tsan FAILED" >build-tsan.results
RUNS+=("ThreadSanitizer|compile|build-tsan.results")

# ---- summary ----------------------------------------------------------------------------
say "summary"
"$PYTHON" - "$STEP_FAILURES" "${RUNS[@]}" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET

step_failures = int(sys.argv[1])
total_pass = 0
total_fail = step_failures
for run in sys.argv[2:]:
    label, kind, path = run.split("|", 2)
    passed = failed = skipped = 0
    names = []
    if kind == "compile":
        with open(path) as f:
            for line in f:
                name, _, res = line.strip().rpartition(" ")
                if res == "ok":
                    passed += 1
                elif line.strip():
                    failed += 1
                    names.append("build %s" % name)
    elif kind == "meson":
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                res = t.get("result")
                if res in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                elif res == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    names.append("%s: %s" % (t.get("name"), res))
    else:
        root = ET.parse(path).getroot()
        for case in root.iter("testcase"):
            bad = [c for c in case if c.tag in ("failure", "error")]
            if bad:
                failed += 1
                names.append("%s::%s" % (case.get("classname"), case.get("name")))
            elif any(c.tag == "skipped" for c in case):
                skipped += 1
            else:
                passed += 1
    total_pass += passed
    total_fail += failed
    print("%-28s %4d passed, %d failed, %d skipped" % (label, passed, failed, skipped))
    for n in names:
        print("    FAILED " + n)
if step_failures:
    print("%d build/run step(s) failed (counted as failures)" % step_failures)
print("%d passed, %d failed" % (total_pass, total_fail))
sys.exit(1 if total_fail else 0)
EOF
