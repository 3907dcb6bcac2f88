"""A plan for N devices: memory per device and hours of the AWN fine-tune under FSDP2, from the
model's config alone (``convert --plan --devices 8 --device-memory 80GB``: no weights, no dry pass).

What each device holds, as ``train/sharding.py`` runs it (bytes; P parameters, D devices, c bytes per
value computed: 2 in bf16/fp16, else 4):

* the sharded student: float32 weights, gradients and Adam's two moments, ``16 P / D``;
* what FSDP2 gathers: the root (embeddings, head, final norm) whole through forward and backward, the
  current and the prefetched layer, in c bytes, plus one layer's float32 gradient before it is reduced;
* the frozen KD teacher, when the fine-tune runs it every step (``derive.teacher_is_live``: a causal
  LM's, or any distilling hidden states), sharded the same way in float32 (``4 P / D``), with its
  gathered root and layers;
* activations of one micro-batch, ``layers × tokens × (16 h + 4 d_ff) × c``, and for a language model its
  logits, ``tokens × vocab × 4`` bytes three or four times over (output, gradient, loss, teacher's).

Step time is an estimate from FLOPs: ``6 P`` a token for each trained width pass, ``2 P`` a token for the
teacher's forward, divided by D devices at the stated achieved throughput (communication not counted).
Everything is estimated, not measured; BENCHMARKS.md compares it with measured runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from torch import nn

from ..config.recipe import Recipe
from ..errors import AwnError
from ..model.families import find_ffns
from ..train.settings import batches_per_step, width_passes
from .derive import teacher_is_live
from .memory import GIB, activation_bytes, hidden_size, logit_bytes, logits_note

HEADROOM = 0.9  # share of a device's memory a plan may fill (allocator fragmentation, CUDA context)
DEVICE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
DEFAULT_TFLOPS = 400.0  # achieved per device: about 40 % of an H100's dense bf16 peak


@dataclass(frozen=True)
class Setup:
    """The machine planned for: how many devices, each one's memory and achieved TFLOP/s."""

    devices: int
    device_bytes: int
    tflops: float = DEFAULT_TFLOPS


@dataclass(frozen=True)
class ConfigShape:
    """What the plan needs of a model, counted on the meta device from its config."""

    params: int
    layer_params: int  # the largest decoder layer (one FSDP2 unit)
    root_params: int  # everything outside the layers (embeddings, head, final norm)
    layers: int
    hidden: int
    d_ff: int
    vocab: int
    tied: bool = False  # the LM head is the input embedding's matrix

    @classmethod
    def of(cls, model: nn.Module) -> "ConfigShape":
        """Count a model's parameters per FSDP2 unit (build it on ``torch.device("meta")``)."""
        blocks = find_ffns(model)
        layers = list(dict.fromkeys(b.layer for b in blocks))
        per_layer = [sum(p.numel() for p in model.get_submodule(name).parameters()) for name in layers]
        params = sum(p.numel() for p in model.parameters())
        return cls(
            params=params,
            layer_params=max(per_layer),
            root_params=params - sum(per_layer),
            layers=len(layers),
            hidden=hidden_size(model.config),
            d_ff=max(b.width for b in blocks),
            vocab=int(getattr(model.config, "vocab_size", 0) or 0),
            tied=bool(getattr(model.config, "tie_word_embeddings", False)),
        )


@dataclass(frozen=True)
class DeviceMemory:
    """Bytes one device holds at its peak, by what holds them."""

    sharded_state: int
    gathered: int
    teacher: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        """All of it."""
        return self.sharded_state + self.gathered + self.teacher + self.activations + self.logits


def parse_bytes(text: str) -> int:
    """``"80GB"``, ``"80GiB"``, ``"141 GB"``, ``"512MiB"`` in bytes (GB = 10^9, GiB = 2^30)."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?B)\s*", text, flags=re.IGNORECASE)
    if not found:
        raise AwnError(f"--device-memory {text!r} is not a size such as 80GB or 80GiB")
    number, unit = float(found.group(1)), found.group(2).upper()
    power = "KMGT".index(unit[0]) + 1
    return int(number * (1024**power if "I" in unit else 1000**power))


def compute_bytes(recipe: Recipe) -> int:
    """Bytes per value the fine-tune computes in."""
    return 2 if recipe.train.mixed_precision in ("bf16", "fp16") else 4


def device_memory(shape: ConfigShape, devices: int, micro: int, seq_len: int, recipe: Recipe) -> DeviceMemory:
    """What one of ``devices`` holds while it trains a micro-batch of ``micro`` sequences."""
    c = compute_bytes(recipe)
    live = teacher_is_live(recipe)
    tokens = micro * seq_len
    gathered = c * (shape.root_params + 2 * shape.layer_params)
    return DeviceMemory(
        sharded_state=16 * shape.params // devices,
        gathered=gathered + 4 * shape.layer_params,
        teacher=(4 * shape.params // devices + gathered) if live else 0,
        activations=activation_bytes(
            shape.layers, shape.hidden, shape.d_ff, tokens, c, recipe.train.activation_checkpointing
        ),
        logits=logit_bytes(shape.vocab, tokens, recipe.task == "causal-lm", live),
    )


def fit_micro(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe) -> Optional[int]:
    """The largest micro-batch (a divisor of each device's share of the batch) that fits; None if none."""
    batch = recipe.train.batch_size
    if batch % setup.devices:
        return None
    share = batch // setup.devices
    for micro in sorted((d for d in range(1, share + 1) if share % d == 0), reverse=True):
        if device_memory(shape, setup.devices, micro, seq_len, recipe).total <= HEADROOM * setup.device_bytes:
            return micro
    return None


def step_seconds(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe) -> float:
    """Estimated seconds of one AWN step from its FLOPs at ``setup.tflops`` achieved per device."""
    cfg = recipe.train
    passes = width_passes(cfg) + (1 if cfg.mode == "stochastic" and not cfg.extra_widths else 0)  # the sandwich
    batches = batches_per_step(cfg)
    tokens = cfg.batch_size * seq_len
    per_pass = 8 if cfg.activation_checkpointing else 6  # a forward (2), a backward (4), a recomputed forward
    flops = tokens * shape.params * (per_pass * passes + (2 * batches if teacher_is_live(recipe) else 0))
    return flops / (setup.devices * setup.tflops * 1e12)


def with_checkpointing(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe) -> Recipe:
    """``recipe`` with activation checkpointing on where it is unset and the fine-tune does not fit
    ``setup`` without it (as a run on this machine derives it; a refusal then names the smaller need)."""
    if "activation_checkpointing" in recipe.train.model_fields_set or fit_micro(shape, setup, seq_len, recipe):
        return recipe
    return recipe.model_copy(update={"train": recipe.train.model_copy(update={"activation_checkpointing": True})})


def smallest_fit(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe) -> Optional[int]:
    """The fewest devices of ``setup``'s memory the fine-tune fits on (None: no count does), with
    activation checkpointing where it is unset and needed."""
    for devices in DEVICE_COUNTS:
        trial = Setup(devices, setup.device_bytes, setup.tflops)
        if fit_micro(shape, trial, seq_len, with_checkpointing(shape, trial, seq_len, recipe)) is not None:
            return devices
    return None


def plan_text(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe, name: str) -> str:
    """The plan for ``setup`` as a few lines; AwnError naming the smallest setup that fits when it does not."""
    recipe = with_checkpointing(shape, setup, seq_len, recipe)
    micro = fit_micro(shape, setup, seq_len, recipe)
    if micro is None:
        _refuse(shape, setup, seq_len, recipe, name)
    memory = device_memory(shape, setup.devices, micro, seq_len, recipe)
    share = recipe.train.batch_size // setup.devices
    step = step_seconds(shape, setup, seq_len, recipe)
    gib = lambda n: f"{n / GIB:.1f} GiB"  # noqa: E731
    lines = [
        f"plan for {name} ({shape.params / 1e9:.2f} B parameters) on {setup.devices} × "
        f"{setup.device_bytes / 1e9:.0f} GB, {'FSDP2' if setup.devices > 1 else 'one device, unsharded'} "
        "(estimated from the config, not measured):",
        f"  per device   {gib(memory.total)} of {gib(setup.device_bytes)}: sharded weights, gradients and Adam "
        f"{gib(memory.sharded_state)}, gathered layers {gib(memory.gathered)}, teacher {gib(memory.teacher)}, "
        f"activations {gib(memory.activations)}, logits {gib(memory.logits)}",
        f"  batch        {recipe.train.batch_size} × {seq_len} tokens: {share} per device in micro-batches of "
        f"{micro} (grad_accum {share // micro})"
        + (", activation checkpointing per decoder layer" if recipe.train.activation_checkpointing else ""),
        f"  time         ~{step:.2f} s a step, ~{step * recipe.train.steps / 3600:.2f} h for {recipe.train.steps} "
        f"steps at {setup.tflops:g} TFLOP/s achieved per device",
        f"  host memory  ~{gib(12 * shape.params)} per process (the model, its teacher and the copy being sharded)",
    ]
    lm = recipe.task == "causal-lm"
    note = lm and logits_note(
        shape, tied=shape.tied, teacher_live=teacher_is_live(recipe), bytes_per_value=compute_bytes(recipe)
    )
    return "\n".join(lines + ([f"  note         {note}"] if note else []))


def _refuse(shape: ConfigShape, setup: Setup, seq_len: int, recipe: Recipe, name: str) -> None:
    size = f"{setup.device_bytes / 1e9:.0f} GB"
    if recipe.train.batch_size % setup.devices:
        raise AwnError(
            f"train.batch_size {recipe.train.batch_size} does not split over {setup.devices} devices; "
            "give a batch size they divide"
        )
    smallest = smallest_fit(shape, setup, seq_len, recipe)
    need = device_memory(shape, setup.devices, 1, seq_len, recipe).total
    hint = (
        f"the smallest setup that fits is {smallest} × {size}"
        if smallest is not None
        else "no count of such devices does (what FSDP2 gathers and one sequence's activations and logits do "
        "not shrink with more devices): use larger devices, or a shorter data.max_length"
    )
    raise AwnError(
        f"{name} does not fit on {setup.devices} × {size}: one sequence a device needs ~{need / GIB:.1f} GiB; {hint}"
    )


def plan_devices(recipe: Recipe, setup: Setup) -> str:
    """The plan for ``setup`` of the recipe's model, from its config alone (a local folder holding only
    config.json is enough; a Hub id reads only its config)."""
    import transformers

    from .bundle import resolve_model

    folder = Path(recipe.model).expanduser()
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise AwnError(f"{folder} holds no config.json: not a Hugging Face model folder")
    location = str(folder) if folder.is_dir() else resolve_model(recipe.model)
    config = transformers.AutoConfig.from_pretrained(location)
    seq_len = min(recipe.data.max_length, int(getattr(config, "max_position_embeddings", 0) or recipe.data.max_length))
    shape = ConfigShape.of(meta_model(config, recipe.task))
    return plan_text(shape, setup, seq_len, recipe, recipe.model)


def meta_model(config: Any, task: str) -> nn.Module:
    """The model of ``config`` on the meta device: shapes only, no memory."""
    import torch
    import transformers

    auto = transformers.AutoModelForCausalLM if task == "causal-lm" else transformers.AutoModelForSequenceClassification
    with torch.device("meta"):
        return auto.from_config(config)
