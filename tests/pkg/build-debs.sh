#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build guestlink's Debian packages as from a clean clone and lint them:
#   tests/pkg/build-debs.sh OUTDIR
# The tracked (and new, not ignored) files are copied to a temporary
# directory, `dpkg-buildpackage -us -uc -b` runs there (it writes the .debs to
# the parent directory), lintian checks the result. OUTDIR receives the .debs,
# the .changes, build.log and lintian.txt. Exit status: 0 built and no lintian
# error.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
work=$(mktemp -d /tmp/guestlink-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"

if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$top" ls-files -z --cached --others --exclude-standard |
		(cd "$top" && tar -cf - --null -T -) | tar -xf - -C "$work/src"
else
	tar -C "$top" --exclude='./build*' -cf - . | tar -xf - -C "$work/src"
fi

rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
t0=$(date +%s)
# Debian's own interpreters (pybuild runs python3.X from PATH), not a local pyenv.
if ! (cd "$work/src" && PATH=/usr/sbin:/usr/bin:/sbin:/bin DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1; then
	tail -n 60 "$out/build.log"
	echo "dpkg-buildpackage failed"
	exit 1
fi
t1=$(date +%s)
cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out/"
echo "dpkg-buildpackage: $((t1 - t0)) s; packages:"
(cd "$out" && ls -1 *.deb | grep -v dbgsym | while read -r d; do
	printf '  %-45s %8d bytes\n' "$d" "$(stat -c %s "$d")"; done)

# Every tag, informational ones too; only errors fail (the README lists the
# remaining tags with a reason each).
rc=0
lintian --info --display-info --pedantic --fail-on error "$out"/*.changes >"$out/lintian.txt" 2>&1 || rc=$?
grep -vE '^(N:|running with root)' "$out/lintian.txt" | sort | uniq -c | sort -rn || true
printf 'lintian: %d errors, %d warnings, %d info, %d pedantic\n' \
	"$(grep -c '^E: ' "$out/lintian.txt" || true)" "$(grep -c '^W: ' "$out/lintian.txt" || true)" \
	"$(grep -c '^I: ' "$out/lintian.txt" || true)" "$(grep -c '^P: ' "$out/lintian.txt" || true)"
exit $rc
