"""What a run loads once: the model a recipe names (safely), its data as a :class:`Bundle`, calibration
batches and the distillation teacher; plus the checks that need no model.

Shared by the convert run (convert.py) and the re-evaluation of its output (reevaluate.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import transformers
from safetensors import SafetensorError, safe_open
from torch import nn

from ..checkpoint.load import check_safe_checkpoint, safetensors_files
from ..config.recipe import Recipe
from ..config.settings import StageSettings, read_settings
from ..data.tokenized import TaskData, ensure_pad_token
from ..errors import MetricError, ModelLoadError, NotAnExportError, first_line
from ..evaluate.metrics import is_shipped, load_metric
from ..files.readers import check_folder_files, entry_kind
from ..train.run_state import examples_seen
from ..train.settings import check_batch
from ..train.teacher import Teacher, distillation_teacher
from .ranks import process_rank

log = logging.getLogger("awncompress")

BUILTIN_MODELS = ("builtin:minilm", "builtin:smollm2", "builtin:gemma3", "builtin:mpnet")
_BUILTIN_ALIASES = {"builtin:gemma3-270m": "builtin:gemma3"}


@dataclass
class Bundle:
    """What a run loads once and every stage works on: the model, its tokenizer, whether its task
    head came trained (False: a dense stage trains it first) and the tokenized data."""

    model: nn.Module
    tokenizer: Any
    head_trained: bool
    data: TaskData


def resolve_model(name: str) -> str:
    """A loadable location for a model name: builtin asset folder, local folder, or the Hub id."""
    if name.startswith("builtin:"):
        from ..data import assets  # fetching assets pulls in pip and apt plumbing: only for builtins

        name = _BUILTIN_ALIASES.get(name, name)
        if name == "builtin:minilm":
            return str(assets.minilm_path())
        if name == "builtin:smollm2":
            return str(assets.smollm2_path())
        if name == "builtin:gemma3":
            return str(assets.gemma3_path())
        if name == "builtin:mpnet":
            return str(assets.mpnet_path())
        raise ModelLoadError(f"unknown builtin model {name!r}; builtins: {', '.join(BUILTIN_MODELS)}")
    path = Path(name).expanduser()
    kind = entry_kind(path)
    if kind is not None and kind != "a directory":
        raise ModelLoadError(f"{path} is {kind}; a model is a folder with config.json and safetensors weights")
    if path.is_file():
        raise ModelLoadError(
            f"{path} is a file; a model is a folder with config.json and safetensors weights "
            "(training data goes to --data)"
        )
    if path.is_dir():
        _check_model_folder(path)
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(("/", "\\")):
        raise ModelLoadError(f"model path {name} does not exist")
    return name  # a Hub id


# A tokenizer folder has at least one of these; without them transformers builds an empty tokenizer
# from the config, and every word would be [UNK].
_TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def _check_model_folder(path: Path) -> None:
    check_safe_checkpoint(path)
    check_folder_files(path, "model folder", ModelLoadError)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} holds no config.json: not a Hugging Face model folder")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{path} holds no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}, ...); save the tokenizer "
            "beside the model (tokenizer.save_pretrained)"
        )
    try:
        safetensors_files(path)  # the index may not name files outside the folder
    except NotAnExportError as exc:
        raise ModelLoadError(str(exc)) from None


def _check_weights(model: nn.Module, info: dict, location: str) -> bool:
    """Whether the head came trained; ModelLoadError when the body's weights do not match the config."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    body = lambda keys: [k for k in keys or [] if prefix != "." and k.startswith(prefix)]  # noqa: E731 - not the head's
    body_missing, unexpected = body(info.get("missing_keys")), body(info.get("unexpected_keys"))
    if body_missing or unexpected:
        shown = ", ".join((body_missing or unexpected)[:3])
        raise ModelLoadError(
            f"the weights in {location} do not match its config.json: {len(body_missing)} missing and "
            f"{len(unexpected)} unexpected ({shown}, ...)"
        )
    return not info.get("missing_keys")


def _auto_class(task: str) -> type:
    return (
        transformers.AutoModelForSequenceClassification
        if task == "text-classification"
        else transformers.AutoModelForCausalLM
    )


def load_model(name: str, task: str, num_labels: Optional[int] = None) -> tuple[nn.Module, Any, bool]:
    """Model, tokenizer and whether its task head came trained (False: a dense stage is needed).

    Safetensors only and no remote code; a Hub id without network gets one plain sentence.
    """
    location = resolve_model(name)
    kwargs: dict[str, Any] = {"use_safetensors": True, "trust_remote_code": False}
    if task == "text-classification" and num_labels is not None:
        kwargs["num_labels"] = num_labels
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(location, trust_remote_code=False)
        model, info = _auto_class(task).from_pretrained(location, output_loading_info=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, SafetensorError) as exc:
        first = first_line(exc)
        if location == name and not Path(name).exists():
            raise ModelLoadError(
                f"could not load {name!r} from the Hugging Face Hub (is there a network connection? "
                f"a local folder works offline): {first}"
            ) from None
        if isinstance(exc, SafetensorError) or "deserializ" in first:
            files = sorted(Path(location).glob("*.safetensors"))
            where = files[0] if len(files) == 1 else f"a safetensors file in {location}"
            raise ModelLoadError(
                f"{where} is not a readable safetensors file (truncated or corrupt?): {first}"
            ) from None
        if "mismatched" in first or "above report" in first:
            first = _mismatch(location, task, kwargs) or first
        raise ModelLoadError(f"could not load model from {location}: {first}") from None
    head_trained = _check_weights(model, info, location)
    _check_finite(model, location)
    share_pad_token(model, tokenizer)
    return model.eval(), tokenizer, head_trained


def _mismatch(location: str, task: str, kwargs: dict) -> Optional[str]:
    """The first weight whose shape config.json does not give (transformers points at a report it
    logs, which a quiet run does not show), as one sentence; None when none is found."""
    try:
        config = transformers.AutoConfig.from_pretrained(
            location, **{k: v for k, v in kwargs.items() if k == "num_labels"}
        )
        with torch.device("meta"):
            model = _auto_class(task).from_config(config)
        want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        prefix = getattr(model, "base_model_prefix", "")
        for file in safetensors_files(Path(location)):
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    have = tuple(f.get_slice(key).get_shape())
                    expected = want.get(key, want.get(f"{prefix}.{key}"))
                    if expected is not None and expected != have:
                        return (
                            f"the weights do not match its config.json: {key} has shape {list(have)} in "
                            f"{file.name}, config.json gives {list(expected)}"
                        )
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return None
    return None


def _check_finite(model: nn.Module, location: str) -> None:
    """NaN or inf weights would make every loss NaN, and the fine-tune blame the learning rate."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelLoadError(f"the weights in {location} hold NaN or inf values ({name}); the model is broken")


def share_pad_token(model: nn.Module, tokenizer: Any) -> None:
    """Give the model the tokenizer's pad token when it has none (decoders classify the last
    non-padding token, and need to know which that is); eos stands in when the tokenizer has no pad."""
    ensure_pad_token(tokenizer)
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def check_settings(recipe: Recipe, trusted_metric: Optional[str] = None) -> None:
    """What can be checked before a model is loaded: the metric and the batch sizes.

    A metric that is not shipped runs its code when loaded (a local script or one from the Hub), so
    it is loaded only when the user named it on the command line (``trusted_metric``), not when a
    recipe file or an output folder names it.
    """
    metric = recipe.resolved_metric
    if not is_shipped(metric) and metric != trusted_metric:
        raise MetricError(
            f"metric {metric!r} is named by the recipe, not on the command line; it is not shipped with "
            "awncompress and loading it runs its code (a local script or one from the Hub), so it was not "
            f"run: to run it, name it with --metric {metric}"
        )
    load_metric(metric)
    processes = process_rank()[1]
    check_batch(recipe.train, processes, "train.batch_size")
    if recipe.dense.steps:
        check_batch(read_settings(recipe).dense, processes, "dense.batch_size")


def calibration_batches(data: TaskData, n_batches: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """The first training batches, for activation statistics (never the eval data)."""
    n = min(len(data.train), n_batches * batch_size)
    return [data.collate([data.train[i] for i in range(s, min(n, s + batch_size))]) for s in range(0, n, batch_size)]


def run_teacher(original: nn.Module, settings: StageSettings, data: TaskData, quiet: bool = False) -> Optional[Teacher]:
    """The distillation teacher of the run's fine-tunes (None without KD): a logit table over the
    examples they draw, for a classification model whose hidden states are not distilled."""
    train = settings.train
    if not (train.kd_weight > 0 or train.kd_hidden_weight > 0):
        return None
    return distillation_teacher(
        original,
        settings.task,
        data.train,
        data.collate,
        settings.recipe.evaluate.batch_size,
        quiet,
        hidden=train.kd_hidden_weight > 0,
        examples=examples_seen(data.train, train, settings.seed),
    )
