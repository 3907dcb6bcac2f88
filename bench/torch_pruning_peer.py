"""torch-pruning as an external peer (issue 28): its dependency-graph pruner and its own Taylor
importance cut the FFN channels of a finished run's dense model, then the same per-width fine-tune.

    python bench/torch_pruning_peer.py --run RUN/seed-0 --out bench/results/peers-minilm/torch-pruning/seed-0 \
        [--model out/demo/dense]

RUN/seed-N is a finished ``awncompress convert`` output (``bench/peers_minilm.py`` writes them; name
its ``--dense`` model with ``--model``: a run's folder may not point outside itself). The
run is copied to a temporary folder and evaluated again there (``awncompress evaluate``'s code path:
the run's recipe, data split, calibration batches, teacher and per-width fine-tune settings) with two
more methods, registered here only, so torch-pruning stays a benchmark's dependency, not the package's:

* ``torch-pruning``: ``tp.pruner.MetaPruner`` with ``tp.importance.GroupTaylorImportance`` (DepGraph,
  Fang et al., CVPR'23; Taylor importance of Molchanov et al., CVPR'19: |w · ∂L/∂w| summed over the
  coupled group, the up projection's rows and the down projection's columns), the loss's gradient
  summed over the run's calibration batches; each FFN keeps the same neuron count as every other
  method at that width (``ctx.layer_plan``), nothing else is pruned (only the FFNs' groups are traced,
  so a decoder such as SmolLM2 prunes in seconds).
* ``torch-pruning+finetune``: that cut, then the per-width KD fine-tune every ``<peer>+finetune`` gets.

The report files (rows ``dense``, ``torch-pruning``, ``torch-pruning+finetune``, per-example
correctness on the same evaluation examples, so ``bench/summarise.py`` can pair them with the run's
rows) go to OUT. Needs ``pip install torch-pruning`` (1.6.1 measured).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
import torch_pruning as tp
from harness import make_parser, parse, reevaluate_copy
from torch import nn

from awncompress.evaluate.methods import Candidate, EvalContext, Method, register_method
from awncompress.evaluate.methods.finetune import FinetunedMethod
from awncompress.model.families import find_ffns
from awncompress.model.surgery import layer_widths

NAME = "torch-pruning"


def prune_ffns(model: nn.Module, keep: list[int], batches: list) -> None:
    """Prune each FFN of ``model`` in place to ``keep[i]`` neurons with torch-pruning's Taylor importance
    over ``batches`` (labelled calibration batches); ValueError when the result is not those widths."""
    blocks = find_ffns(model)
    example = {k: v[:2] for k, v in batches[0].items() if isinstance(v, torch.Tensor) and k != "labels"}
    ratios = {b.up: 1.0 - k / b.width for b, k in zip(blocks, keep)}
    roots = {id(m) for b in blocks for m in (b.up, b.gate) if m is not None}
    # Only the FFNs' groups are asked for: with every other layer a root, torch-pruning walks the
    # residual stream's group of a decoder (Llama) for hours before pruning anything.
    others = [m for m in model.modules() if not list(m.children()) and id(m) not in roots]
    pruner = tp.pruner.MetaPruner(
        model,
        example_inputs=example,
        importance=tp.importance.GroupTaylorImportance(),
        pruning_ratio=0.0,  # every group but the FFNs' stays whole
        pruning_ratio_dict=ratios,
        ignored_layers=others,
        output_transform=lambda out: out.logits,
    )
    model.zero_grad(set_to_none=True)
    model.eval()
    for batch in batches:
        model(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}).loss.backward()
    pruner.step()
    model.zero_grad(set_to_none=True)
    got = layer_widths(model)
    if got != list(keep):
        raise ValueError(f"torch-pruning left FFN widths {got}, asked for {list(keep)}")


class TorchPruningMethod(Method):
    """torch-pruning's Taylor cut at each width (see the module docstring)."""

    name = NAME
    needs_calibration = True

    @contextmanager
    def at_width(self, ctx: EvalContext, fraction: float) -> Iterator[Candidate]:
        model = copy.deepcopy(ctx.original).requires_grad_(True)
        prune_ffns(model, ctx.layer_plan[fraction], ctx.calibration)
        yield Candidate(model, layer_widths(model))


def register() -> None:
    """Make ``torch-pruning`` and ``torch-pruning+finetune`` methods of this process."""
    register_method(NAME, TorchPruningMethod, style={"color": "tab:brown", "linestyle": "--"})
    register_method(f"{NAME}+finetune", lambda: FinetunedMethod(TorchPruningMethod()), style={"color": "tab:brown"})


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--run", type=Path, required=True, help="a finished convert output (RUN/seed-N)")
    parser.add_argument("--out", type=Path, required=True, help="where the report files go")
    parser.add_argument(
        "--model", help="the trained dense model the run started from, where it is outside RUN (its --dense)"
    )
    parser.add_argument("--static-only", action="store_true", help="only the static cut (no per-width fine-tunes)")
    args = parse(parser)
    register()
    methods = [NAME] if args.static_only else [NAME, f"{NAME}+finetune"]
    reevaluate_copy(args.run, args.out, methods, model=args.model)
    print(f"torch-pruning report: {args.out}", flush=True)


if __name__ == "__main__":
    main()
