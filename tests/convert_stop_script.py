"""Run by tests/test_sharding.py under torchrun: ``awncompress convert`` (its arguments follow) stopped on
every process right after the AWN fine-tune's first checkpoint has landed (every process's shards under
FSDP2, the main process's file under DDP), as a killed run is."""

import os
import sys

import awncompress.train.finetune as ft
from awncompress.cli import main

real = ft._checkpoint


def save_then_stop(*args, **kwargs):
    real(*args, **kwargs)  # it ends with every process past the checkpoint
    os._exit(0)


ft._checkpoint = save_then_stop
sys.argv = ["awncompress", *sys.argv[1:]]
main()
