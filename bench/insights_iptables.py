#!/usr/bin/env python3
"""Time insights-core's iptables-save parser (insights.parsers.iptables.IPTables) on a file.

Reads the file once and splits it into lines once (insights hands parsers a list of lines),
then builds IPTables(context) N times and prints one JSON line: best and median wall time,
throughput, and how many rules and chains insights kept.

Note: insights only reads rule lines that start with "-A"; the "[packets:bytes] -A ..." lines
of `iptables-save -c` are silently skipped, so compare on a file without counters.

usage: insights_iptables.py FILE [ITERATIONS]
"""
import json
import sys
import time

from insights.parsers.iptables import IPTables
from insights.tests import context_wrap

try:
    from insights import get_nvr
except ImportError:  # older insights-core
    get_nvr = None


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    path = sys.argv[1]
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    context = context_wrap(text)
    times = []
    parsed = None
    for _ in range(max(1, iterations)):
        start = time.perf_counter()
        parsed = IPTables(context)
        times.append(time.perf_counter() - start)
    times.sort()
    best = times[0]
    print(json.dumps({
        "parser": "insights.parsers.iptables.IPTables",
        "insights_core": get_nvr() if get_nvr else None,
        "file": path,
        "bytes": len(text.encode("utf-8")),
        "lines": len(context.content),
        "rules": len(parsed.rules),
        "chains": len(parsed.chains),
        "iterations": len(times),
        "best_s": best,
        "median_s": times[len(times) // 2],
        "mb_per_s": len(text.encode("utf-8")) / 1e6 / best,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
