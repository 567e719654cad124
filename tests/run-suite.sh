#!/bin/bash
# The whole guestlink test suite on a fresh Debian 12 machine, as root:
# installs what it needs, builds with -Werror, checks the C format, runs
# `make check`, the real-VM suite (`make check-vm`), the soak (`make check-soak`, once), the
# benchmark ratios (`make bench`, figures only), builds and
# lints the Debian packages, tests them installed in a VM (`make
# check-packages`) and under libvirt (`make check-libvirt`), the suite again
# under ASan+UBSan, the libFuzzer harnesses for 60 s each and `make distcheck`.
# Ends with "N passed, N failed".
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc)
out="$top/build/suite"
passed=0 failed=0 skipped=0
failures=()

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# Count automake's per-test results (one per TAP assertion).
count_trs() {
	local dir=$1 what=$2 p f s
	p=$(find "$dir" -name '*.trs' -exec cat {} + 2>/dev/null | grep -cE '^:test-result: (PASS|XFAIL)')
	f=$(find "$dir" -name '*.trs' -exec cat {} + 2>/dev/null | grep -cE '^:test-result: (FAIL|XPASS|ERROR)')
	s=$(find "$dir" -name '*.trs' -exec cat {} + 2>/dev/null | grep -cE '^:test-result: SKIP')
	echo "$what: $p passed, $f failed, $s skipped"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("$what")
		grep -lE '^:test-result: (FAIL|XPASS|ERROR)' $(find "$dir" -name '*.trs') | sed 's/\.trs$/.log/' |
			while read -r log; do echo "--- $log"; tail -n 60 "$log"; done
	fi
}

# A step whose TAP lines ("ok"/"not ok") were saved in a log; none at all is a failure.
count_tap() {
	local what=$1 log=$2 p f
	p=$(grep -cE '^ok ' "$log")
	f=$(grep -cE '^not ok ' "$log")
	echo "$what: $p passed, $f failed"
	passed=$((passed + p)) failed=$((failed + f))
	[ "$f" -eq 0 ] && [ "$p" -gt 0 ] || { failures+=("$what"); [ "$p" -gt 0 ] || failed=$((failed + 1)); }
}

# A step that is one test: its exit status decides.
one() {
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$what")
		echo "FAILED: $what"
	fi
}

configure_into() {
	local dir=$1
	shift
	rm -rf "$dir" && mkdir -p "$dir" && (cd "$dir" && "$top/configure" -q "$@")
}

step "dependencies"
bash "$top/tests/deps.sh" || { echo "0 passed, 1 failed"; exit 1; }

step "autogen"
./autogen.sh >/dev/null 2>&1 || { ./autogen.sh; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$out"

step "build (-Werror)"
if configure_into build/release --enable-werror && make -C build/release -j"$jobs" >"$out/build.log" 2>&1; then
	passed=$((passed + 1))
else
	tail -n 80 "$out/build.log"
	echo "build failed"
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
fi

step "format (make format-check: .clang-format over every C file)"
one "make format-check" make -C build/release format-check

step "make check"
timeout 1500 make -C build/release -j"$jobs" check >"$out/check.log" 2>&1
count_trs build/release "make check"

if grep -q '^check-vm:' build/release/Makefile 2>/dev/null; then
	step "make check-vm (QEMU + Linux guest + systemd)"
	timeout 1800 make -C build/release check-vm 2>&1 | tee "$out/check-vm.log"
	count_tap "make check-vm" "$out/check-vm.log"
fi

step "soak: 1,000 clients for 60 s with faults (make check-soak, release build)"
timeout 200 make -C build/release check-soak 2>&1 | tee "$out/check-soak.log"
count_tap "make check-soak" "$out/check-soak.log"

step "benchmarks: ratios to raw baselines (make bench, figures only, release build)"
timeout 450 make -C build/release bench 2>&1 | tee "$out/bench.log"

step "Debian packages: dpkg-buildpackage from a copy of the tree, lintian"
t0=$SECONDS
one "debs + lintian" bash "$top/tests/pkg/build-debs.sh" build/release/tests/pkg/debs
echo "debs + lintian: $((SECONDS - t0)) s"

step "the packages installed in a VM, then purged (make check-packages)"
t0=$SECONDS
timeout 1500 make -C build/release check-packages 2>&1 | tee "$out/check-packages.log"
count_tap "make check-packages" "$out/check-packages.log"
echo "make check-packages: $((SECONDS - t0)) s"

step "libvirt: libvirtd, the qemu hook, a transient domain (make check-libvirt)"
t0=$SECONDS
timeout 1200 make -C build/release check-libvirt 2>&1 | tee "$out/check-libvirt.log"
count_tap "make check-libvirt" "$out/check-libvirt.log"
echo "make check-libvirt: $((SECONDS - t0)) s"

step "ASan+UBSan build and make check"
if configure_into build/asan --enable-werror --enable-sanitizers &&
	make -C build/asan -j"$jobs" >"$out/asan-build.log" 2>&1; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		timeout 2400 make -C build/asan -j"$jobs" check >"$out/asan-check.log" 2>&1
	count_trs build/asan "make check (ASan+UBSan)"
else
	tail -50 "$out/asan-build.log"
	failed=$((failed + 1)) failures+=("ASan build")
fi

step "libFuzzer harnesses, 60 s each"
if configure_into build/fuzz CC=clang --enable-fuzz &&
	make -C build/fuzz -j"$jobs" >"$out/fuzz-build.log" 2>&1; then
	for h in build/fuzz/tests/fuzz/fuzz-*; do
		[ -x "$h" ] && [ -f "$h" ] || continue
		name=${h##*/fuzz-}
		corpus=$(mktemp -d)
		cp -r "$top/tests/fuzz/corpus/$name/." "$corpus/" 2>/dev/null
		one "fuzz-$name" timeout 120 "$h" -max_total_time=60 -rss_limit_mb=2048 -timeout=10 \
			-print_final_stats=1 "$corpus" >"$out/fuzz-$name.log" 2>&1
		tail -n 12 "$out/fuzz-$name.log"
		rm -rf "$corpus"
	done
else
	tail -50 "$out/fuzz-build.log"
	failed=$((failed + 1)) failures+=("fuzz build")
fi

step "make distcheck"
if timeout 1800 make -C build/release -j"$jobs" distcheck >"$out/distcheck.log" 2>&1; then
	passed=$((passed + 1))
else
	tail -n 80 "$out/distcheck.log"
	failed=$((failed + 1)) failures+=("make distcheck")
fi

step "summary"
[ ${#failures[@]} -eq 0 ] || printf 'failed: %s\n' "${failures[@]}"
echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
