#!/usr/bin/env python3
"""Groups the ONNX node cases Cairn does not pass by operator and reason.

Reads target/conformance-report.txt (written by the onnx_node_conformance test) and each
case's ops.txt (written by gen_onnx_node_tests.py), and prints one line per
(operator, reason) group, biggest first, with the group's cases.

    python3 tools/conformance_failures.py [REPORT] [CASES_DIR]
"""

import collections
import os
import re
import sys


def reason(why: str) -> str:
    """The message with numbers, names and values blanked, so alike failures group."""
    why = re.sub(r"element \d+ is .*", "wrong values", why)
    why = re.sub(r"node '[^']*'", "node", why)
    why = re.sub(r"tensor '[^']*'", "tensor", why)
    why = re.sub(r"output '[^']*'", "output", why)
    why = re.sub(r"\[[0-9, ]*\]", "[..]", why)
    why = re.sub(r"first at node .*", "", why)
    return why.strip()[:140]


def main() -> None:
    report = sys.argv[1] if len(sys.argv) > 1 else "target/conformance-report.txt"
    cases = sys.argv[2] if len(sys.argv) > 2 else "target/onnx-node-tests"
    groups = collections.defaultdict(list)
    total = passed = 0
    with open(report) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 1)
            status, rest = parts[0], parts[1].strip() if len(parts) > 1 else ""
            name, _, why = rest.partition(" ")
            total += 1
            if status == "pass":
                passed += 1
                continue
            try:
                with open(os.path.join(cases, name, "ops.txt")) as o:
                    ops = ",".join(sorted({l.strip() for l in o if l.strip() and l.strip() != "Constant"}))
            except OSError:
                ops = "?"
            groups[(ops, status, reason(why))].append(name)
    print(f"{passed} / {total} pass; {total - passed} do not, in {len(groups)} groups:")
    for (ops, status, why), names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"{len(names):3}  {status:<11} {ops[:60]:<60} {why}")
        print(f"       {' '.join(names)}")


if __name__ == "__main__":
    main()
