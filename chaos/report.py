#!/usr/bin/env python3
"""The table of docs/reliability.md from the drivers' JSON lines: build/chaos/<fault>.json."""
import json
import statistics
import sys
from pathlib import Path


def seconds(values):
    values = [v for v in values if v == v]  # NaN: never recovered
    if not values:
        return "never"
    if len(values) == 1:
        return f"{values[0]:.1f} s"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def main():
    out = Path(sys.argv[1])
    print("| fault | injected | survived | time to recover | lost |")
    print("| --- | ---: | ---: | --- | ---: |")
    notes = []
    for fault in sys.argv[2:]:
        path = out / f"{fault}.json"
        if not path.exists() or not path.read_text().strip():
            print(f"| {fault} | not run | | | |")
            continue
        row = json.loads(path.read_text().strip().splitlines()[-1])
        print(
            f"| {row['fault']} | {row['injected']} | {row['survived']} | "
            f"{seconds(row['recovery_seconds'])} | {row['lost']} |"
        )
        notes.append(f"- {row['fault']}: {json.dumps(row['details'], ensure_ascii=False)}")
    print()
    print("\n".join(notes))


main()
