# tests/bench: benchmarks, built by `make check` but not run as tests.

# --- agent: agent.ping rate and latency against a raw reference server ---
check_PROGRAMS += tests/bench/bench-agent
tests_bench_bench_agent_SOURCES = tests/bench/bench-agent.c
# --- end agent ---

# Terminal sessions (by hand): keystroke round trip and bulk output.
EXTRA_DIST += tests/bench/bench-pty.py

# --- client: libguestlink on one connection, beside the Python client (bench-python.py) ---
check_PROGRAMS += tests/bench/bench-client
tests_bench_bench_client_SOURCES = tests/bench/bench-client.c
tests_bench_bench_client_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JSONC_CFLAGS)
tests_bench_bench_client_LDADD = proto/libguestlink.la $(LIBEVENT_LIBS) $(JSONC_LIBS)
EXTRA_DIST += tests/bench/bench-python.py
# --- end client ---

# `make bench`: issue 11's ratios to their raw baselines (agent.ping at 100
# clients, guestsim each way), the median of alternating rounds. Figures, not
# a test; run-suite.sh prints them once, on the release build.
EXTRA_DIST += tests/bench/bench-ratios.py

bench: tests/bench/bench-agent tests/bench/bench-backend all
	top_builddir='$(abs_top_builddir)' timeout -k 5 400 \
	python3 '$(abs_top_srcdir)/tests/bench/bench-ratios.py' $(BENCH_ROUNDS)

.PHONY: bench
