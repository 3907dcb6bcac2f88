"""Run by tests/test_sharding.py under torchrun: ``awncompress convert`` (its arguments follow) stopped on
every process right after the AWN fine-tune's first sharded checkpoint has landed, as a killed run is."""

import os
import sys

import awncompress.train.finetune as ft
from awncompress.cli import main

real = ft.save_sharded


def save_then_stop(*args, **kwargs):
    real(*args, **kwargs)
    os._exit(0)


ft.save_sharded = save_then_stop
sys.argv = ["awncompress", *sys.argv[1:]]
main()
