#!/bin/bash
# Install what guestlink needs to build, test and boot its test VM (Debian 12, as root).
set -euo pipefail

packages=(
	build-essential autoconf automake libtool pkg-config
	libevent-dev libjson-c-dev libsystemd-dev nettle-dev libcrypt-dev
	clang clang-format libclang-rt-14-dev python3 socat
	qemu-system-x86 qemu-utils busybox-static cpio kmod qemu-guest-agent e2fsprogs
	systemd
	tmux less openssh-server openssh-client
	python3-pytest python3-setuptools ansible-core
	bsdutils zsh
	fuse3 libfuse3-dev
	debhelper lintian
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
