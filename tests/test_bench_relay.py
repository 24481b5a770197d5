"""The relay benchmark runs end to end on a handful of messages (no timing asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_relay.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_relay", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_every_relayed_message_and_intake_answer_is_delivered() -> None:
    result = _bench().main(["--rate", "20", "--seconds", "1", "--rounds", "2",
                            "--animators", "3", "--warm-up", "3", "--timeout", "30"])
    for kind in ("intake", "relay"):
        assert result.sent(kind) == 20
        assert result.delivered(kind) == result.sent(kind)
    relayed = result.probes("relay")
    # Each relayed message reached the chef de projet who took the firm's need.
    assert {p.chat_id for p in relayed} <= {910_000_001, 910_000_002, 910_000_003}
    assert all("vous écrit à propos de TI-" in p.text for p in relayed)
    assert not any(p.held for p in relayed)  # every firm stayed under the flood limit
