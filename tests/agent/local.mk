# tests/agent
