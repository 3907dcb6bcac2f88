"""Timed passes of a served export in its own engine: onnxruntime forward passes, llama.cpp prompt
processing and generation.

Each function opens the engine file once and returns a no-argument callable that runs one timed unit
of work; evaluate/served_speed.py interleaves the callables of several files (round-robin, as torch
latency is timed) and turns the times into rows. The inputs are fixed token ids: speed depends on the
shapes, not on what the tokens say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .formats import require, require_for

TOKEN_ID = 5  # an ordinary id that every vocabulary has (past the special ids 0-3); speed does not depend on it


def onnx_pass(path: Path, batch: int, seq_len: int, threads: int) -> Callable[[], None]:
    """One onnxruntime forward pass of ``batch`` × ``seq_len`` tokens through ``path`` (model.onnx),
    on ``threads`` intra-op threads (one inter-op thread: one graph at a time, as a server runs it)."""
    require_for("onnx")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ids = np.full((batch, seq_len), TOKEN_ID, dtype=np.int64)
    feeds = {}
    for spec in session.get_inputs():
        feeds[spec.name] = ids if spec.name == "input_ids" else np.ones_like(ids)
        if spec.name == "token_type_ids":
            feeds[spec.name] = np.zeros_like(ids)
    return lambda: session.run(None, feeds)


class LlamaCppPasses:
    """A GGUF file loaded once in llama-cpp-python, with the two units llama-bench times:
    ``prompt()`` evaluates ``prompt_tokens`` tokens in one batch from an empty context, ``generate()``
    evaluates ``gen_tokens`` tokens one at a time from an empty context (the decoding loop without a
    sampler). Close it when done."""

    def __init__(self, path: Path, prompt_tokens: int, gen_tokens: int, threads: int) -> None:
        from .llama_cpp import INSTALL_RUNTIME, silence_log

        require("llama_cpp", "Timing GGUF files in llama.cpp", INSTALL_RUNTIME)
        import llama_cpp

        silence_log()
        self.prompt_tokens, self.gen_tokens = prompt_tokens, gen_tokens
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=prompt_tokens + gen_tokens + 8,
            n_batch=prompt_tokens,
            n_ubatch=prompt_tokens,
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=0,
            verbose=False,
        )

    def prompt(self) -> None:
        self.llm.reset()
        self.llm.eval([TOKEN_ID] * self.prompt_tokens)

    def generate(self) -> None:
        self.llm.reset()
        for _ in range(self.gen_tokens):
            self.llm.eval([TOKEN_ID])

    def close(self) -> None:
        self.llm.close()
