"""`awncompress convert` end to end: everything that can be checked first, then the stages.

checks (output folder, metric, batch sizes) → load model and data → derive the settings nobody set
(``defaults``) → a dry pass of every stage on a tiny copy (``dryrun``: fail in the first minute,
time each stage, fit ``--budget``) → create the output folder → the stages (``flow``):
score → order → wrap → fine-tune → fold → export → evaluate → report.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch

from ..checkpoint.layout import CHECKPOINTS_DIR
from ..config.recipe import Recipe
from ..config.settings import read_settings
from ..data.tokenized import TaskData, load_task_data
from ..errors import AwnError, ModelLoadError
from ..model.flop_targets import pick_for_flops
from ..model.growth import check_growable
from ..model.heads import head_spec_for
from ..serve.formats import check_applies, require_for
from ..serve.llama_cpp import check_runtime_for, check_tree_for
from ..train.growing import check_one_process
from ..train.heap import bound_heap
from .bundle import Bundle, check_settings, load_model, resolve_model
from .chain import ConvertResult, mean_length, run_stages
from .derive import derive_defaults, fit_max_length
from .outdir import begin_output, check_output, check_resume, exclusive, inputs_fingerprint
from .plan import Plan, dry_run, estimate, fit_budget
from .ranks import agree, is_main_process, main_process_first, process_rank, rank_output

log = logging.getLogger("awncompress")


@dataclass
class _Prepared:
    recipe: Recipe  # final: every derived value and the budget's cuts are in it
    bundle: Bundle
    plan: Optional[Plan] = None
    llama_cpp: Optional[Path] = None  # the llama.cpp tree GGUF exports convert with (checked)


def _load(recipe: Recipe) -> tuple[Recipe, Bundle]:
    """The model, tokenizer, whether its head is trained, and the data (``data.max_length`` fitted to
    the model, so the recipe is returned too); a head of the wrong size is refused."""
    torch.manual_seed(recipe.seed)
    model, tokenizer, head_trained = load_model(recipe.model, recipe.task)
    recipe = fit_max_length(recipe, model)
    with main_process_first():  # one process tokenizes into the cache, the others read it
        data = load_task_data(read_settings(recipe).data, tokenizer)
    if recipe.task == "text-classification" and model.config.num_labels != data.num_labels:
        if head_trained:
            raise ModelLoadError(
                f"{recipe.model} has a head for {model.config.num_labels} labels but the data has {data.num_labels}; "
                "to train a new head, convert its encoder alone (transformers.AutoModel.from_pretrained(model)"
                ".save_pretrained(folder), with its tokenizer)"
            )
        model, tokenizer, head_trained = load_model(recipe.model, recipe.task, data.num_labels)
    if data.label_names and recipe.task == "text-classification":
        model.config.id2label = dict(enumerate(data.label_names))
        model.config.label2id = {n: i for i, n in enumerate(data.label_names)}
    return recipe, Bundle(model, tokenizer, head_trained, data)


def _fingerprint(recipe: Recipe, data: TaskData, resume: bool) -> Recipe:
    """Record what the run reads (``derived.inputs``); a resumed run must read the same."""
    location = resolve_model(recipe.model) if not recipe.model.startswith("builtin:") else recipe.model
    found = inputs_fingerprint(location, [data.train, data.eval])
    recorded = recipe.derived.get("inputs")
    if resume and recorded is not None and recorded != found:
        raise AwnError(
            "--resume refused: the model or the data changed since the run began (their fingerprint differs); "
            "start a new --out"
        )
    return recipe.model_copy(update={"derived": {**recipe.derived, "inputs": found}})


def check_served(recipe: Recipe, bundle: Bundle, llama_cpp: Optional[Path]) -> Optional[Path]:
    """Each of ``export.formats`` applies to this model and its dependencies are there, before the run
    starts; the checked llama.cpp tree when GGUF is asked for."""
    arch = type(bundle.model).__name__
    for fmt in recipe.export.formats:
        check_applies(fmt, bundle.model.config.model_type, arch)
        require_for(fmt)
    if "gguf" not in recipe.export.formats:
        return None
    tree = check_tree_for(llama_cpp, arch, bundle.tokenizer is not None)
    check_runtime_for(recipe.export.quant, per_layer=False)
    return tree


def _prepare(
    recipe: Recipe,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    trusted_metric: Optional[str],
    budget: Optional[float],
    dry: bool,
    inputs: Iterable[Path] = (),
    llama_cpp: Optional[Path] = None,
) -> _Prepared:
    """Every check, the model and data, the derived settings and (``dry``) the dry pass and its plan."""
    if not resume:
        check_output(out, recipe, resume=False, overwrite=overwrite, inputs=inputs)
    check_settings(recipe, trusted_metric)
    if resume:  # the main process checks OUT (another one's is private); every process gets the recorded recipe

        def recorded() -> Recipe:
            check_output(out, recipe, resume=True, overwrite=overwrite, inputs=inputs)
            return check_resume(out, recipe)

        recipe = agree(recorded)
    bound_heap()  # before the model is loaded: every stage's large buffers go back to the system when freed
    recipe, bundle = _load(recipe)
    model, data = bundle.model, bundle.data
    llama_cpp = check_served(recipe, bundle, llama_cpp)
    if recipe.awn.heads:  # a family whose heads cannot be cut, or a target no cut reaches, before any output exists
        head_spec_for(model)
        for target in recipe.flop_targets:
            pick_for_flops(model, target, mean_length(data.eval))  # the length the exports pick at
    if recipe.awn.grow:
        check_growable(model)
        check_one_process(process_rank()[1])
    recipe = _fingerprint(recipe, data, resume)
    if not resume:
        recipe = agree(functools.partial(derive_defaults, recipe, model, data, bundle.head_trained))
        check_settings(recipe, trusted_metric)  # derived batch sizes too
    if not bundle.head_trained and recipe.dense.steps == 0:
        raise AwnError(
            f"the task head of {recipe.model} is untrained and dense.steps is 0, which skips the stage that trains "
            "it: the teacher and every width would guess; leave dense.steps unset (or give a fine-tuned model)"
        )
    prepared = _Prepared(recipe, bundle, llama_cpp=llama_cpp)
    if dry:
        measured = dry_run(recipe, bundle, llama_cpp)
        if budget is not None:
            prepared.recipe = fit_budget(recipe, estimate(recipe, measured, len(data.train), len(data.eval)), budget)
            if (
                prepared.recipe.data.max_eval_examples != recipe.data.max_eval_examples
            ):  # the budget cut the evaluation set
                bundle.data = load_task_data(read_settings(prepared.recipe).data, bundle.tokenizer)
                prepared.recipe = _fingerprint(prepared.recipe, bundle.data, resume=False)
        if is_main_process():  # the others stopped their dry pass after its fine-tune (ranks.py)
            prepared.plan = estimate(prepared.recipe, measured, len(bundle.data.train), len(bundle.data.eval))
    return prepared


def plan_convert(
    recipe: Recipe,
    out: Path,
    *,
    overwrite: bool = False,
    trusted_metric: Optional[str] = None,
    budget: Optional[float] = None,
    inputs: Iterable[Path] = (),
    llama_cpp: Optional[Path] = None,
) -> Optional[Plan]:
    """What `convert` would do and how long each stage should take, from a dry pass; writes nothing.
    None on a launcher's other processes (they take part in the dry pass's fine-tunes only)."""
    return _prepare(
        recipe,
        Path(out),
        resume=False,
        overwrite=overwrite,
        trusted_metric=trusted_metric,
        budget=budget,
        dry=True,
        inputs=inputs,
        llama_cpp=llama_cpp,
    ).plan


def run_convert(
    recipe: Recipe,
    out: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    evaluate: bool = True,
    trusted_metric: Optional[str] = None,
    budget: Optional[float] = None,
    inputs: Iterable[Path] = (),
    llama_cpp: Optional[Path] = None,
) -> ConvertResult:
    """Run a whole conversion as the recipe says; see the module docstring for the stages.

    Everything that can be checked is checked, and every stage runs once on a tiny copy, before
    the output folder is made. ``trusted_metric``: a metric the user named on the command line;
    ``budget``: minutes the run should take (fine-tune steps are scaled to fit); ``inputs``: more
    files the run reads (its recipe file), never replaced; ``llama_cpp``: the llama.cpp source tree
    whose converter writes ``export.formats: [gguf]`` (named by the user, never taken from a recipe). A
    resumed run continues the recorded one as it was (no dry pass, no new budget). A second run on the
    same ``out`` is refused while one runs.
    """
    budget = budget if budget is not None else recipe.budget
    shared = Path(out)  # the main process's OUT: the fine-tunes' checkpoints of every process go there
    with rank_output(shared, budget=budget is not None) as out, exclusive(out):
        try:
            prepared = _prepare(
                recipe,
                out,
                resume=resume,
                overwrite=overwrite,
                trusted_metric=trusted_metric,
                budget=budget,
                dry=not resume,
                inputs=inputs,
                llama_cpp=llama_cpp,
            )
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"before the run began; {out} was not touched") from None
        if prepared.plan is not None:
            log.info("%s", prepared.plan.text())
        begin_output(out, prepared.recipe, resume=resume)
        try:
            settings = read_settings(prepared.recipe)  # the recipe read once, as the stages take it
            return run_stages(
                settings,
                out,
                prepared.bundle,
                resume=resume,
                quiet=quiet,
                evaluate=evaluate,
                llama_cpp=prepared.llama_cpp,
                checkpoints=shared / CHECKPOINTS_DIR,
            )
        except OSError as exc:
            if isinstance(exc, AwnError) or exc.filename is None:
                raise
            raise AwnError(
                f"{exc.filename}: {exc.strerror or exc}; once that is fixed, the run in {out} continues with --resume"
            ) from None
