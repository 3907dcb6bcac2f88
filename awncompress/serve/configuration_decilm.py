"""DeciLM / Nemotron-NAS config for awncompress per-layer exports (written into every ``--format vllm``
folder as configuration_decilm.py; this is the file's source).

transformers has no ``nemotron-nas`` config class, and vLLM's native ``DeciLMForCausalLM`` reads
``config.block_configs[i].ffn.ffn_mult`` and ``.attention.n_heads_in_group`` as attributes. This class
is a Llama config whose ``block_configs`` entries are attribute objects; it has no model code. Load it
with ``trust_remote_code=True`` (``vllm serve FOLDER --trust-remote-code``).
"""

from types import SimpleNamespace

from transformers import LlamaConfig


class BlockConfig(SimpleNamespace):
    """One block's settings, read as attributes (``block.ffn.ffn_mult``), written back as a dict."""

    def to_dict(self) -> dict:
        return {k: (v.to_dict() if isinstance(v, BlockConfig) else v) for k, v in vars(self).items()}


def _block(value):
    if isinstance(value, dict):
        return BlockConfig(**{k: _block(v) for k, v in value.items()})
    return value


class DeciLMConfig(LlamaConfig):
    """A Llama config with one ``block_configs`` entry per decoder layer (FFN width and KV grouping)."""

    model_type = "nemotron-nas"

    def __init__(self, block_configs=None, **kwargs):
        super().__init__(**kwargs)
        self.block_configs = [_block(b) for b in block_configs or []]

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["block_configs"] = [b.to_dict() if isinstance(b, BlockConfig) else b for b in self.block_configs]
        return out
