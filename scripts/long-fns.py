#!/usr/bin/env python3
"""List functions longer than a limit (default 150 lines) and files longer
than 1,500 lines under the given source directories.

Usage: scripts/long-fns.py [--max N] DIR...
A function's length runs from its `fn` line to its closing brace (found by
brace counting, strings and comments ignored roughly)."""
import os, re, sys

args = sys.argv[1:]
limit = 150
if args[:1] == ['--max']:
    limit, args = int(args[1]), args[2:]
fn_re = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:unsafe\s+)?fn\s+(\w+)')
found = 0
for d in args or ['ftmb-core/src']:
    for root, _, names in os.walk(d):
        for n in sorted(names):
            if not n.endswith('.rs'):
                continue
            p = os.path.join(root, n)
            lines = open(p, encoding='utf-8').read().split('\n')
            if len(lines) > 1500:
                print(f'{p}: {len(lines)} lines')
                found += 1
            i = 0
            while i < len(lines):
                m = fn_re.match(lines[i])
                if not m:
                    i += 1
                    continue
                depth, started, j = 0, False, i
                while j < len(lines):
                    s = re.sub(r'//.*', '', re.sub(r'"(?:\\.|[^"\\])*"', '""', lines[j]))
                    s = re.sub(r"'(?:\\.|[^'\\])'", "''", s)
                    if not started and ';' in s and '{' not in s:
                        break
                    depth += s.count('{') - s.count('}')
                    started = started or '{' in s
                    if started and depth <= 0:
                        break
                    j += 1
                length = j - i + 1
                if started and length > limit:
                    print(f'{p}:{i + 1}: fn {m.group(1)}: {length} lines')
                    found += 1
                i += 1
print(f'{found} over the limits (functions > {limit} lines, files > 1500 lines)')
