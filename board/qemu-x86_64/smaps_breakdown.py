#!/usr/bin/env python3
"""Where a process's resident set is, from a copy of /proc/PID/smaps (issue 23).

    python3 smaps_breakdown.py SMAPS [SMAPS ...]   # one column per file (e.g. the host's, the guest's)

Mappings are grouped by what backs them: the file's name (the binary, each library), [heap],
[stack], thread stacks and malloc's arenas (anonymous mappings of 8 MiB + guard and of 64 MiB), the
rest of the anonymous memory. For each group: Rss, of it Anonymous, of that AnonHugePages (THP),
and the file-backed rest; all KiB. Standard library only.
"""
import re
import sys
from collections import defaultdict

FIELDS = ("Rss", "Anonymous", "AnonHugePages", "Shared_Clean", "Private_Clean")
HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$")


def parse(path):
    """[(start, end, perms, name, {field: KiB})] in the file's order."""
    mappings = []
    with open(path) as handle:
        for line in handle:
            header = HEADER.match(line)
            if header:
                start, end, perms, name = header.groups()
                mappings.append((int(start, 16), int(end, 16), perms, name.strip(), defaultdict(int)))
                continue
            field, _, value = line.partition(":")
            if mappings and field in FIELDS:
                mappings[-1][4][field] += int(value.split()[0])
    return mappings


def group_of(mappings, index):
    start, end, perms, name, _ = mappings[index]
    if name.startswith("/"):
        # One name for a file whatever path or version (the host's libstdc++.so.6.0.30 is the
        # guest's libstdc++.so.6; a copy of the daemon may be called rtcam-something).
        base = re.sub(r"\.so(\.[0-9.]*)?$", ".so", name.rsplit("/", 1)[-1])
        base = "rtcam" if base.startswith("rtcam") else base
        return base + (" (text)" if "x" in perms else " (data)" if "w" in perms else " (ro)")
    if name:
        return name
    # Anonymous: a thread stack is an 8 MiB-ish read-write mapping right above a guard page
    # (---p); a malloc arena heap lives in a 64 MiB-aligned reservation whose rest is ---p.
    size = end - start
    below = mappings[index - 1] if index > 0 else None
    above = mappings[index + 1] if index + 1 < len(mappings) else None
    if below and below[2].startswith("---") and below[1] == start and size >= 1 << 20 and size <= 16 << 20:
        return "thread stacks"
    if start % (64 << 20) == 0 or (above and above[2].startswith("---") and above[0] == end
                                   and (above[1] % (64 << 20) == 0)):
        return "malloc arenas (threads)"
    return "other anonymous"


def summarize(path):
    mappings = parse(path)
    groups = defaultdict(lambda: defaultdict(int))
    for index, mapping in enumerate(mappings):
        if mapping[2].startswith("---"):
            continue
        group = groups[group_of(mappings, index)]
        for field, value in mapping[4].items():
            group[field] += value
        group["count"] += 1
    return groups


def main(paths):
    columns = [summarize(path) for path in paths]
    names = sorted({name for column in columns for name in column},
                   key=lambda name: -max(column.get(name, {}).get("Rss", 0) for column in columns))
    width = max([len(n) for n in names] + [10])
    print(f"{'KiB: Rss / anon / THP':<{width}}  " + "  ".join(f"{p[-28:]:>28}" for p in paths))
    for name in names:
        cells = []
        for column in columns:
            g = column.get(name)
            cells.append(f"{g['Rss']:>8} / {g['Anonymous']:>6} / {g['AnonHugePages']:>5} ({g['count']})" if g else f"{'-':>28}")
        print(f"{name:<{width}}  " + "  ".join(f"{c:>28}" for c in cells))
    totals = []
    for column in columns:
        rss = sum(g["Rss"] for g in column.values())
        anon = sum(g["Anonymous"] for g in column.values())
        huge = sum(g["AnonHugePages"] for g in column.values())
        totals.append(f"{rss:>8} / {anon:>6} / {huge:>5}")
    print(f"{'total':<{width}}  " + "  ".join(f"{c:>28}" for c in totals))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
