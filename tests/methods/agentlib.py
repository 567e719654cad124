# SPDX-License-Identifier: LGPL-2.1-or-later
"""The agent and its JSON-RPC client for tests/methods (now in tests/lib/glagent.py)."""

from glagent import Agent, Client, b64, error_code, unb64  # noqa: F401
