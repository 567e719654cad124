# tests/bench: benchmarks, built by `make check` but not run as tests.

# --- agent: agent.ping rate and latency against a raw reference server ---
check_PROGRAMS += tests/bench/bench-agent
tests_bench_bench_agent_SOURCES = tests/bench/bench-agent.c
# --- end agent ---

# Terminal sessions (by hand): keystroke round trip and bulk output.
EXTRA_DIST += tests/bench/bench-pty.py
