"""Run by tests/test_finetune.py on 2 CPU processes under torchrun (accelerate picks gloo)."""

import sys

from accelerate import PartialState
from safetensors.torch import save_file

sys.path.insert(0, sys.argv[2])
from conftest import collate, make_batches, toy_data  # noqa: E402
from zoo import make_model  # noqa: E402

from awncompress import AWNConfig, convert_  # noqa: E402
from awncompress.train.finetune import PriorConfig, TrainConfig, finetune  # noqa: E402

model = make_model("bert")
convert_(model, AWNConfig(), calibration=make_batches())
data = toy_data()
finetune(
    model,
    data,
    collate,
    TrainConfig(steps=4, batch_size=8, lr=1e-3, rate_lr=0.1, checkpoint_every=0),
    num_examples=len(data),
    prior=PriorConfig(4.6, 1.0, 1.0),
    quiet=True,
)
state = PartialState()
assert state.num_processes == 2, state
save_file(
    {k: v.contiguous() for k, v in model.state_dict().items()}, f"{sys.argv[1]}/rank{state.process_index}.safetensors"
)
