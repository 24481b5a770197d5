"""Benchmark the commune table: load time and fuzzy lookups (a script, not a test).

    python bench/bench_geography.py [--rounds 200] [--json]

Loads `knowledge.geography.Geography` from its packaged file (every current commune and
the PLM arrondissements), then resolves a fixed set of typed answers (a misspelt name, a
word that is no commune, an ambiguous name, a postcode, a name with a postcode) `--rounds`
times. Prints the load time and the mean time per lookup against their targets
(0.5 s and 5 ms). This used to be `tests/test_geography.py::test_speed`: a wall-clock
assertion does not belong in the test suite, where a busy machine makes it fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from knowledge.geography import Geography  # noqa: E402

QUERIES = ("parai le monial", "bonjour", "Saint-Martin", "71600", "Montceau 71300")
LOAD_TARGET = 0.5  # seconds
LOOKUP_TARGET = 0.005  # seconds


def measure(rounds: int) -> dict[str, float]:
    """Load the table three times and resolve every query `rounds` times; return timings."""
    loads = []
    geo = None
    for _ in range(3):
        start = time.perf_counter()
        geo = Geography.load()
        loads.append(time.perf_counter() - start)
    assert geo is not None
    for query in QUERIES:  # warm the caches once, as a running bot would have
        geo.resolve(query)
    start = time.perf_counter()
    for _ in range(rounds):
        for query in QUERIES:
            geo.resolve(query)
    per_lookup = (time.perf_counter() - start) / (rounds * len(QUERIES))
    return {"communes": float(len(geo)), "load_s": statistics.median(loads),
            "lookup_ms": per_lookup * 1000}


def main() -> None:
    """Run the benchmark and print a Markdown table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{int(result['communes'])} communes, {args.rounds} rounds of {len(QUERIES)} lookups\n")
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    print(f"| load (median of 3) | {result['load_s']:.3f} s | {LOAD_TARGET} s |")
    print(f"| fuzzy lookup (mean) | {result['lookup_ms']:.2f} ms | {LOOKUP_TARGET * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
