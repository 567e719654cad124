#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""python/tests/test_hostile.py (pytest) as TAP."""
import sys

import pytap

sys.exit(pytap.main("test_hostile.py"))
