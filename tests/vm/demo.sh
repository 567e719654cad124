#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# guestlink demo: on a fresh Debian 12 machine, as root, installs what is needed,
# builds, boots a small VM (QEMU under TCG, Debian's kernel, systemd) and drives
# it through guestlink: info, exec, a file copied in and out, clean shutdown.
#   bash tests/vm/demo.sh            (BUILD_DIR=... to build elsewhere; default: build/,
#                                     or the source tree itself after ./configure && make there)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
# An in-tree build (./configure && make in the source tree) is used as it is:
# configuring again out of tree is refused by automake while it exists.
if [ -z "${BUILD_DIR:-}" ] && [ -f "$src/config.status" ]; then
	build=$src
else
	build=${BUILD_DIR:-$src/build}
fi
step() { printf '\n==> %s\n' "$*"; }
packages=(build-essential autoconf automake libtool pkg-config
	libevent-dev libjson-c-dev libsystemd-dev nettle-dev python3 systemd
	qemu-system-x86 busybox-static cpio kmod socat qemu-guest-agent)

step "Installing build and VM packages (apt-get)"
if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "Missing packages. Run as root:" >&2
		echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
		echo "or run this script as root (sudo bash $0)." >&2
		exit 1
	fi
fi

step "Building guestlink in $build"
if [ "$build" != "$src" ] && [ -f "$src/config.status" ]; then
	echo "The source tree holds an in-tree build, so $build cannot be configured." >&2
	echo "Either unset BUILD_DIR to use the in-tree build, or run 'make distclean' in $src." >&2
	exit 1
fi
[ -x "$src/configure" ] || (cd "$src" && ./autogen.sh)
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$src/configure" -q
make -j"$(nproc)" -s

step "Booting the demo VM and driving it through guestlink"
top_srcdir=$src top_builddir=$build exec python3 "$src/tests/vm/run-vm-tests.py" --demo
