# tests/pkg: what a distribution installs. test-abi and test-conffile run in
# `make check`; `make debs` builds and lints the Debian packages into
# tests/pkg/debs/, `make check-packages` tests them installed in a real VM
# (building them first if tests/pkg/debs/ has none).
pkg_tests = tests/pkg/test-abi.py tests/pkg/test-conffile.py
dist_check_SCRIPTS += $(pkg_tests)
TESTS += $(pkg_tests)
EXTRA_DIST += tests/pkg/build-debs.sh tests/pkg/test-packages.py tests/pkg/test-libvirt.py tests/pkg/libvirt_qga.py \
	tests/lib/glvirt.py contrib/libvirt/qemu-hook contrib/libvirt/domain-fragment.xml

debs:
	bash '$(abs_top_srcdir)/tests/pkg/build-debs.sh' '$(abs_top_builddir)/tests/pkg/debs'

check-packages:
	ls '$(abs_top_builddir)'/tests/pkg/debs/guestlink-agent_*.deb >/dev/null 2>&1 || \
		$(MAKE) $(AM_MAKEFLAGS) debs
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	GUESTLINK_DEBS='$(abs_top_builddir)/tests/pkg/debs' PYTHONDONTWRITEBYTECODE=1 \
	python3 '$(abs_top_srcdir)/tests/pkg/test-packages.py'

# libvirtd + virtlogd (started by the test, no systemd needed), the qemu hook,
# a transient domain; as root.
check-libvirt: all
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	PYTHONDONTWRITEBYTECODE=1 python3 '$(abs_top_srcdir)/tests/pkg/test-libvirt.py'

clean-local: clean-pkg-debs
clean-pkg-debs:
	rm -rf tests/pkg/debs tests/pkg/artifacts tests/pkg/artifacts-libvirt

.PHONY: debs check-packages check-libvirt clean-pkg-debs
