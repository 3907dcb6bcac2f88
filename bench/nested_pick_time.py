"""Time to materialise one width from a nested checkpoint (issue target: < 1 s for MiniLM).

python bench/nested_pick_time.py OUT/nested [--widths 0.125 0.25 0.5] [--repeats 5]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from harness import make_parser, parse

from awncompress import load_pretrained


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("nested", type=Path)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parse(parser)
    load_pretrained(args.nested, width=0.5)  # warm the imports and the page cache
    for w in args.widths:
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            load_pretrained(args.nested, width=w)
            times.append(time.perf_counter() - began)
        print(
            f"width {w:g}: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
        )


if __name__ == "__main__":
    main()
