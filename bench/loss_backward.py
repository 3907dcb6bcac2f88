"""Issue 30: one forward and backward of the fine-tune's per-token losses (KD + next-token) over
logits the size of Gemma 3 270M's (8 × 64 tokens × 262,144), with awncompress's heap bound: seconds
and minor page faults. Run it at two commits to compare (before and after the chunks were split).

    python bench/loss_backward.py [--batch 8] [--seq 64] [--vocab 262144]
"""

from __future__ import annotations

import resource
import time

import torch
from harness import make_parser

from awncompress.train.heap import bound_heap
from awncompress.train.losses import distillation_loss, lm_loss


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=262144)
    args = parser.parse_args()
    bound_heap()
    g = torch.Generator().manual_seed(0)
    student = torch.randn(args.batch, args.seq, args.vocab, generator=g).requires_grad_(True)
    teacher = torch.randn(args.batch, args.seq, args.vocab, generator=g)
    labels = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g)

    def once() -> float:
        loss = distillation_loss(student, teacher, 1.0) + lm_loss(student, labels)
        loss.backward()
        student.grad = None
        return float(loss.detach())

    once()  # warm-up
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    value = once()
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"loss {value:.6f}: {after.ru_minflt - before.ru_minflt:,} minor page faults, "
        f"user {after.ru_utime - before.ru_utime:.1f} s, sys {after.ru_stime - before.ru_stime:.1f} s, "
        f"wall {time.perf_counter() - began:.1f} s"
    )


if __name__ == "__main__":
    main()
