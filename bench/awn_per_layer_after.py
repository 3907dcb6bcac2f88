"""awn's own adaptive widths beside FLAP's (issue 28): the learned per-layer widths of a finished run,
evaluated on its data as ``awn-per-layer`` rows, so ``bench/summarise.py`` can pair them with the run's.

    python bench/awn_per_layer_after.py --run bench/results/peers-smollm2/seed-0 \
        --out bench/results/peers-smollm2/awn-per-layer/seed-0

FLAP spreads a width's neurons over the layers by a global threshold on its fluctuation metric; awn's
counterpart is ``convert --per-layer``: at each width's FFN FLOP budget, the widths the learned
per-layer rates give (``widths_for_budget``). The peers benchmarks ran without it; this writes those
exports from the run's nested checkpoint into a temporary copy of the run and evaluates only them
(``awncompress evaluate``'s code path: the run's recipe, data and windows).
"""

from __future__ import annotations

from pathlib import Path

from harness import make_parser, parse, reevaluate_copy
from transformers import AutoTokenizer

from awncompress.checkpoint.layout import NESTED_DIR, RECIPE_FILE
from awncompress.checkpoint.load import load_pretrained
from awncompress.checkpoint.provenance import read_provenance
from awncompress.config import load_recipe
from awncompress.run.chain import write_per_layer_exports


def write_per_layer(run: Path) -> None:
    """Write per-layer-<w>/ for each export width of ``run`` from its nested checkpoint (convert
    --per-layer's own writer) and record in its recipe that they exist."""
    nested = run / NESTED_DIR
    model, tokenizer = load_pretrained(nested), AutoTokenizer.from_pretrained(nested)
    write_per_layer_exports(model, tokenizer, load_recipe(run / RECIPE_FILE), run, read_provenance(nested)["profile"])
    text = (run / RECIPE_FILE).read_text()
    (run / RECIPE_FILE).write_text(text.replace("per_layer: false", "per_layer: true"))


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished convert output (RUN/seed-N)")
    parser.add_argument("--out", type=Path, required=True, help="where the report files go")
    parser.add_argument("--model", help="the run's original model, where it lies outside RUN")
    parser.add_argument("--train-data", help="the run's training data, where it lies outside RUN")
    args = parse(parser)
    reevaluate_copy(
        args.run, args.out, ["awn-per-layer"], write_per_layer, model=args.model, train_data=args.train_data
    )
    print(f"awn-per-layer report: {args.out}", flush=True)


if __name__ == "__main__":
    main()
