"""Dense perplexity of a causal LM on a recipe's eval windows, with and without BOS at each window's start.

    python bench/lm_bos.py [--recipe smollm2] [--model DIR]

Windows are built as `awncompress convert` builds them (the recipe's data section); "without BOS"
builds them with the tokenizer's BOS token unset.
"""

from __future__ import annotations

from harness import make_parser, parse

from awncompress.config import apply_overrides, load_recipe
from awncompress.config.settings import read_settings
from awncompress.data.tokenized import load_task_data
from awncompress.evaluate.measure import evaluate_model
from awncompress.run.bundle import load_model


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--recipe", default="smollm2")
    parser.add_argument("--model", default=None, help="another causal LM folder (same data section)")
    args = parse(parser)
    recipe = load_recipe(args.recipe)
    if args.model:
        recipe = apply_overrides(recipe, {"model": args.model})
    model, tokenizer, _ = load_model(recipe.model, recipe.task)
    for label in ("with BOS", "without BOS"):
        if label == "without BOS":
            tokenizer.bos_token = None
        data = load_task_data(read_settings(recipe).data, tokenizer)
        ppl = evaluate_model(model, data.eval, data.collate, "causal-lm", batch_size=recipe.evaluate.batch_size)
        print(f"{label}: {len(data.eval)} windows of {recipe.data.max_length}, perplexity {ppl:.2f}", flush=True)


if __name__ == "__main__":
    main()
