# tests/vm: guestlink in a real VM (QEMU + Debian's kernel + systemd). Never part of
# `make check`: run `make check-vm`. Kernel cache: $GUESTLINK_VM_CACHE or
# tests/vm/cache in the build tree; artifacts (console log) in tests/vm/artifacts.
EXTRA_DIST += tests/vm/run-vm-tests.py tests/vm/guest/init tests/vm/guest/vmtest-ctl.py \
	tests/vm/demo.sh tests/vm/scenarios/README tests/vm/scenarios/20_interactive.py \
	tests/vm/scenarios/21_exec_scope.py \
	tests/vm/scenarios/40_cli.py \
	tests/vm/scenarios/20_window.py \
	tests/bench/bench-vm.py tests/bench/bench-vm-guest.py
# QGA on virtio-serial, compared with qemu-ga.
EXTRA_DIST += tests/vm/scenarios/30_qga.py
EXTRA_DIST += tests/vm/scenarios/40_ansible.py

check-vm: all
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	PYTHONDONTWRITEBYTECODE=1 python3 '$(abs_top_srcdir)/tests/vm/run-vm-tests.py'

.PHONY: check-vm
EXTRA_DIST += tests/vm/scenarios/40_audit.py
EXTRA_DIST += tests/vm/scenarios/50_channel.py
