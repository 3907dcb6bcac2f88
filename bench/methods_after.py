"""Evaluate more methods on a finished run, leaving it untouched: e.g. ``awn-bc`` (awn's cuts with FLAP's
bias compensation, issue 28) on the peers benchmarks' runs, paired with their rows by ``summarise.py``.

    python bench/methods_after.py --run bench/results/peers-smollm2/seed-0 --methods awn-bc \
        --out bench/results/peers-smollm2/awn-bc/seed-0

The methods are evaluated on a temporary copy of the run through ``awncompress evaluate``'s code path
(the run's recipe, data, windows and calibration batches); only the report files go to ``--out``.
"""

from __future__ import annotations

from pathlib import Path

from harness import make_parser, parse, reevaluate_copy


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished convert output (RUN/seed-N)")
    parser.add_argument("--out", type=Path, required=True, help="where the report files go")
    parser.add_argument("--methods", required=True, help="comma-separated method names, e.g. awn-bc")
    parser.add_argument("--model", help="the run's original model, where it lies outside RUN")
    parser.add_argument("--train-data", help="the run's training data, where it lies outside RUN")
    args = parse(parser)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    reevaluate_copy(args.run, args.out, methods, model=args.model, train_data=args.train_data)
    print(f"{', '.join(methods)} report: {args.out}", flush=True)


if __name__ == "__main__":
    main()
