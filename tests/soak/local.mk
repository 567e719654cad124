# tests/soak: `make check-soak` runs the soak under load and faults (about 90 s,
# bounded to 150 s). Not part of `make check`: run-suite.sh runs it once, on the
# release build. SOAK_CLIENTS and SOAK_SECONDS scale it down for a quick look.
EXTRA_DIST += tests/soak/soak.py

check-soak: all
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' \
	PYTHONPATH='$(abs_top_srcdir)/tests/lib' PYTHONDONTWRITEBYTECODE=1 \
	timeout -k 5 150 python3 '$(abs_top_srcdir)/tests/soak/soak.py'

.PHONY: check-soak
