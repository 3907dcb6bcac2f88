"""What the ONNX and GGUF exports share: the transformers export they start from, the scratch folder it
lives in, and the final folder, written and checked in a temp dir and renamed into place.

A served export is built in three steps: the uniform (hf) export is written to a hidden scratch
folder beside the target; the engine's own converter turns it into the engine's file inside the
hidden temp folder of :func:`~awncompress.files.atomic.atomic_dir`; the file is run in the engine and
its outputs compared with the transformers export's. Only when that check passes is the folder
renamed into place; on any failure both hidden folders are removed (and ``--out`` too when this
export created it), so nothing half-written is left.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..checkpoint.provenance import PROVENANCE_FILE, SERVED_FORMATS, write_provenance
from ..files.atomic import atomic_write
from ..files.manifest import MANIFEST
from ..version import __version__

# What an hf export holds besides the config and tokenizer: not copied into an ONNX folder.
NOT_COPIED = {"model.safetensors", "model.safetensors.index.json", PROVENANCE_FILE, "README.md", MANIFEST}
PROMPT = (
    "The quick brown fox jumps over the lazy dog. A model that is served where its users deploy it "
    "must give the same next token as the model it was exported from."
)


@contextmanager
def scratch_beside(target: Path) -> Iterator[Path]:
    """A hidden temp folder beside ``target`` (same file system), removed afterwards; when this made
    ``target``'s parent and the block fails, the parent goes too if it is left empty."""
    parent = target.parent
    made = [p for p in [parent, *parent.parents] if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # innermost first
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise
    shutil.rmtree(tmp, ignore_errors=True)


def linked_copy(src: Path, dst: Path, config: dict, skip: tuple[str, ...] = ()) -> None:
    """``dst``: the files of the export ``src`` but ``skip`` (hard-linked, copied where links cannot be
    made) with ``config`` as its config.json: the same weights under the config an engine needs."""
    dst.mkdir(exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and not path.is_symlink() and path.name not in ("config.json", *skip):
            try:
                (dst / path.name).hardlink_to(path)
            except OSError:  # a file system without hard links
                shutil.copyfile(path, dst / path.name)
    atomic_write(dst / "config.json", json.dumps(config, indent=2) + "\n")


def copy_side_files(hf: Path, final: Path) -> list[str]:
    """Copy the config, generation config and tokenizer files of the hf export into ``final``."""
    copied = []
    for path in sorted(hf.iterdir()):
        if path.is_file() and not path.is_symlink() and path.name not in NOT_COPIED:
            shutil.copyfile(path, final / path.name)
            copied.append(path.name)
    return copied


def served_record(hf_record: dict, fmt: str, file: str, extra: dict) -> dict[str, Any]:
    """The served export's awncompress.json: the hf export's record (widths actually exported, FFN
    spec, source) with the format, the file, who loads it and how it was checked."""
    record = {k: v for k, v in hf_record.items() if k not in ("format", "loads_with", "created")}
    record.update(
        format=fmt,
        file=file,
        loads_with=SERVED_FORMATS[fmt],
        awncompress_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    )
    return record


def served_card(record: dict) -> str:
    """A short model card (README.md) for an ONNX or GGUF export."""
    source = record.get("source_model") or "a local model"
    widths = record["layer_widths"]
    width = widths[0] if len(set(widths)) == 1 else widths
    if record["format"] == "onnx":
        run = (
            "```python\nimport onnxruntime as ort\n"
            f'session = ort.InferenceSession("PATH/{record["file"]}")\n'
            f"logits = session.run(None, {{{', '.join(repr(n) + ': ...' for n in record['onnx']['inputs'])}}})[0]\n```"
        )
    elif record["format"] == "vllm":
        run = "```bash\nvllm serve PATH --trust-remote-code   # configuration_decilm.py: the per-layer config\n```"
    else:
        run = f"```bash\nllama-cli -m PATH/{record['file']} -p 'Hello'\n```"
    check = record.get("check") or {}
    return "\n".join(
        [
            "---",
            *([f"base_model: {source}"] if record.get("source_model") else []),
            "tags:",
            "- awncompress",
            f"- {record['format']}",
            "---",
            "",
            f"# {source}: {record['format'].upper()} export at FFN width {width} of {record['d_ff']}",
            "",
            f"Made by awncompress {record['awncompress_version']}; runs in {record['loads_with']}. "
            f"Checked before it was written: {check.get('summary', 'see awncompress.json')}.",
            "",
            "## Run",
            "",
            run,
            "",
        ]
    )


def finish(final: Path, record: dict) -> None:
    """Write the record and the model card into the (temp) folder being built."""
    write_provenance(final, record)
    (final / "README.md").write_text(served_card(record))
