#!/bin/bash
# tests/fuzz/run.sh - build the libFuzzer harnesses (tests/fuzz/fuzz_*.c)
# and run each for a bounded time under ASan + UBSan; or, with --coverage,
# measure the line coverage their corpora reach. tests/fuzz/README.md.
#
# Usage: tests/fuzz/run.sh [-t SECONDS] [-b BUILD] [-o RESULTS] [NAME...]
#        tests/fuzz/run.sh --coverage [-b BUILD] [NAME...]
#   -t SECONDS  time per harness (default 30; $EKMFS_FUZZ_SECONDS)
#   -b BUILD    the clang build directory (default build-fuzz; coverage:
#               build-fuzz-cov); set up when missing
#   -o RESULTS  also write "fuzz NAME ok|FAILED" lines there (tools/test.sh)
#   NAME        harnesses to run (default: all)
#
# Each run starts from the committed seeds (tests/fuzz/corpus/NAME) and the
# corpus earlier runs grew in BUILD/fuzz-corpus/NAME, with the dictionary
# tests/fuzz/NAME.dict. A crash, a leak, a failed FUZZ_CHECK, a UBSan report,
# a 10 s input or 2 GB of memory fails the harness: the input is saved in
# BUILD/fuzz-artifacts/NAME/ and the lines to reproduce it are printed.
# The table at the end gives executions per second and the coverage libFuzzer
# reached (edges of the instrumented program, of those it has in total).
# Exit status: the number of harnesses that failed.
#
# Divisions: arguments / build / run one / coverage / main.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
REPO=$PWD

# ---- arguments ---------------------------------------------------------------

SECONDS_EACH=${EKMFS_FUZZ_SECONDS:-30}
BUILD=
RESULTS=
COVERAGE=0
NAMES=()
while [ $# -gt 0 ]; do
	case $1 in
	-t) SECONDS_EACH=$2; shift 2 ;;
	-b) BUILD=$2; shift 2 ;;
	-o) RESULTS=$2; shift 2 ;;
	--coverage) COVERAGE=1; shift ;;
	-h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "tests/fuzz/run.sh: unknown option $1 (--help)" >&2; exit 2 ;;
	*) NAMES+=("$1"); shift ;;
	esac
done
[ -n "$BUILD" ] || BUILD=$([ $COVERAGE = 1 ] && echo build-fuzz-cov || echo build-fuzz)
if [ ${#NAMES[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		n=${f#tests/fuzz/fuzz_}
		NAMES+=("${n%.c}")
	done
fi

# ---- build ---------------------------------------------------------------------

# clang, ASan + UBSan (a UBSan report aborts: no recovery), libFuzzer's
# coverage on every object; the coverage build is clang's source-based
# coverage instead, with the replay driver.
setup() {
	local opts
	if [ $COVERAGE = 1 ]; then
		opts=(-Dfuzzing=false --buildtype=debug
		      "-Dc_args=-fprofile-instr-generate -fcoverage-mapping"
		      "-Dc_link_args=-fprofile-instr-generate -fcoverage-mapping")
	else
		opts=(-Dfuzzing=true --buildtype=debugoptimized -Db_sanitize=address,undefined
		      -Db_lundef=false "-Dc_args=-fno-sanitize-recover=undefined")
	fi
	if [ ! -f "$BUILD/build.ninja" ]; then
		CC=clang meson setup "$BUILD" "${opts[@]}" >"$BUILD.setup.log" 2>&1 ||
			{ cat "$BUILD.setup.log" >&2; return 1; }
		rm -f "$BUILD.setup.log"
	fi
	ninja -C "$BUILD" "${NAMES[@]/#/tests/fuzz/fuzz_}"
}

# ---- run one -------------------------------------------------------------------

# One harness for SECONDS_EACH; prints its table row into $BUILD/fuzz-rows.
run_one() {
	local name=$1 bin=$BUILD/tests/fuzz/fuzz_$1 work=$BUILD/fuzz-corpus/$1
	local art=$BUILD/fuzz-artifacts/$1 log=$BUILD/fuzz-logs/$1.log rc
	local execs rate cov ft corp total
	mkdir -p "$work" "$art" "$BUILD/fuzz-logs"
	echo "==> fuzz_$name: ${SECONDS_EACH}s"
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	timeout -k 10 $((SECONDS_EACH + 120)) "$bin" -max_total_time="$SECONDS_EACH" \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict="tests/fuzz/$name.dict" -artifact_prefix="$art/" \
		"$work" "tests/fuzz/corpus/$name" >"$log" 2>&1
	rc=$?
	execs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
	rate=$(awk '/^stat::average_exec_per_sec:/ { print $2 }' "$log")
	total=$(grep -o 'Loaded 1 modules *([0-9]* inline 8-bit counters' "$log" | grep -o '([0-9]*' | tr -d '(')
	read -r cov ft corp < <(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 |
		sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/')
	printf '%-10s %-6s %10s %8s %13s %7s %6s\n' "$name" "$([ $rc = 0 ] && echo ok || echo FAILED)" \
		"${execs:--}" "${rate:--}" "${cov:--}/${total:--}" "${ft:--}" "${corp:--}" >>"$BUILD/fuzz-rows"
	[ -n "$RESULTS" ] && echo "fuzz_$name $([ $rc = 0 ] && echo ok || echo FAILED)" >>"$RESULTS"
	if [ $rc != 0 ]; then
		echo "tests/fuzz/run.sh: fuzz_$name FAILED (exit $rc); the end of its log ($log):" >&2
		grep -v '^#[0-9]' "$log" | tail -40 >&2
		for a in "$art"/*; do
			[ -f "$a" ] && echo "  reproduce: $bin $a   (or build/tests/fuzz/fuzz_$name $a)" >&2
		done
	fi
	return $rc
}

# ---- coverage ------------------------------------------------------------------

# The sources each harness is for: its coverage is of these lines.
targets() {
	case $1 in
	header) echo src/format/header.c ;;
	state) echo src/format/state.c ;;
	journal) echo src/format/journal.c ;;
	block) echo src/format/block.c ;;
	content) echo src/content/read.c src/content/content.c src/content/journal.c ;;
	config) echo src/keys/config.c ;;
	keyring) echo src/keys/keyring.c ;;
	kms) echo src/keys/providers/aws_kms.c src/keys/providers/azure_kv.c \
		src/keys/azure_auth.c src/keys/cloud.c ;;
	aws_creds) echo src/keys/aws_creds.c ;;
	control) echo src/fs/control_line.c ;;
	audit) echo src/audit/audit.c src/audit/audit_key.c ;;
	*) echo "tests/fuzz/run.sh: no targets listed for $1" >&2; return 1 ;;
	esac
}

# Replay the seeds and the grown corpus (of build-fuzz) through the
# coverage build; one row per harness: line coverage of its targets.
coverage_one() {
	local name=$1 bin=$BUILD/tests/fuzz/fuzz_$1 prof=$BUILD/fuzz-cov/$1 srcs line
	local grown=build-fuzz/fuzz-corpus/$1
	rm -rf "$prof"
	mkdir -p "$prof"
	srcs=$(targets "$name") || return 1
	LLVM_PROFILE_FILE="$prof/%p.profraw" "$bin" "tests/fuzz/corpus/$name" \
		$([ -d "$grown" ] && echo "$grown") >/dev/null 2>"$prof/replay.log" || {
		echo "tests/fuzz/run.sh: replaying the corpus of fuzz_$name failed:" >&2
		tail -20 "$prof/replay.log" >&2
		return 1
	}
	llvm-profdata merge -sparse "$prof"/*.profraw -o "$prof/merged.profdata" || return 1
	# TOTAL row: ... Lines Missed Cover ...: fields 8..10
	line=$(llvm-cov report "$bin" -instr-profile="$prof/merged.profdata" $srcs | awk '/^TOTAL/')
	printf '%-10s %6s of %5s lines  %s\n' "$name" \
		"$(awk '{ print $8 - $9 }' <<<"$line")" "$(awk '{ print $8 }' <<<"$line")" \
		"$(awk '{ print $10 }' <<<"$line")  ($srcs)"
}

# ---- main ----------------------------------------------------------------------

command -v clang >/dev/null || {
	echo "tests/fuzz/run.sh: clang is missing (sudo tools/install-deps.sh)" >&2
	exit 1
}
if ! setup; then
	echo "tests/fuzz/run.sh: the fuzz build $BUILD failed" >&2
	[ -n "$RESULTS" ] && echo "fuzz-build FAILED" >>"$RESULTS"
	exit 1
fi
failed=0
if [ $COVERAGE = 1 ]; then
	echo "line coverage of each harness's target sources (seeds + build-fuzz's grown corpus):"
	for n in "${NAMES[@]}"; do
		coverage_one "$n" || failed=$((failed + 1))
	done
	exit $failed
fi
: >"$BUILD/fuzz-rows"
for n in "${NAMES[@]}"; do
	run_one "$n" || failed=$((failed + 1))
done
echo
printf '%-10s %-6s %10s %8s %13s %7s %6s\n' harness result execs execs/s "cov/edges" ft corpus
cat "$BUILD/fuzz-rows"
exit $failed
