"""Issue 30: how much of a fine-tune's memory the C heap keeps resident after it ends. Four 4-step
fine-tunes of copies of MiniLM (batch 32, 512 Rotten Tomatoes reviews), alone, one after the other:
resident memory after each, the high-water mark, and each one's CPU seconds.

    OMP_NUM_THREADS=1 python bench/heap_retention.py                                  # as awncompress runs
    OMP_NUM_THREADS=1 MALLOC_TRIM_THRESHOLD_=131072 python bench/heap_retention.py   # glibc's fixed thresholds

Since ``train/heap.py``, every fine-tune hands its freed pages back when it ends (``malloc_trim``); run
this at the commit before it to see glibc's defaults alone.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path

from harness import make_parser

from awncompress.data import assets
from awncompress.data.tokenized import DataConfig, load_task_data
from awncompress.train.finetune import TrainConfig, finetune


def resident() -> str:
    status = Path("/proc/self/status").read_text()
    mib = {k: int(re.search(k + r":\s+(\d+)", status).group(1)) / 1024 for k in ("VmRSS", "VmHWM")}
    return f"RSS {mib['VmRSS']:.0f} MiB, high-water {mib['VmHWM']:.0f} MiB"


def main() -> None:
    make_parser(__doc__).parse_args()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(assets.minilm_path())
    model = AutoModelForSequenceClassification.from_pretrained(assets.minilm_path(), num_labels=2)
    data = load_task_data(
        DataConfig(train="builtin:rotten-tomatoes", max_length=128, max_train_examples=512), tokenizer
    )
    cfg = TrainConfig(steps=4, batch_size=32, checkpoint_every=0)
    print("before", resident(), flush=True)
    for i in range(4):
        copied = copy.deepcopy(model)
        began = time.process_time()
        finetune(copied, data.train, data.collate, cfg, num_examples=512, quiet=True, alone=True)
        seconds = time.process_time() - began
        del copied
        print(f"after fine-tune {i}: {resident()}, {seconds:.2f} CPU s", flush=True)


if __name__ == "__main__":
    main()
