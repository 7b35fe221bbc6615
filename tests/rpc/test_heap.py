"""The collector set-up of a serving process, checked in a process of its own."""

from __future__ import annotations

import subprocess
import sys

from rpc.heap import YOUNG_THRESHOLD

PROBE = """
import gc
from rpc.heap import prepare_for_serving
before = gc.get_threshold()
prepare_for_serving()
print(before[1:] == gc.get_threshold()[1:], gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def test_prepare_for_serving_raises_the_young_threshold_and_freezes_what_is_loaded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", str(YOUNG_THRESHOLD), "True"]
