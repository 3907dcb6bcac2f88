"""Which training examples each optimizer step sees: seeded, resumable, and grouped by length."""

from __future__ import annotations

from typing import Optional

import torch


class IndexStream:
    """Epoch-wise seeded permutations of the training set; position p → example index.

    With ``lengths`` (and more than one distinct length), each epoch is length-grouped: the
    permutation is cut into mega-batches of ``GROUP_BATCHES`` batches, each mega-batch is sorted
    by length, cut into batches, and the batches of the epoch are shuffled. A batch then holds
    examples of similar length, so dynamic padding pads little (Rotten Tomatoes: 27 tokens on
    average, 52 padded with plain shuffling), while the batch order stays random.
    """

    GROUP_BATCHES = 50

    def __init__(self, n: int, seed: int, lengths: Optional[list[int]] = None, batch_size: int = 1):
        self.n, self.seed, self._perms = n, seed, {}
        self.lengths = torch.tensor(lengths) if lengths is not None and len(set(lengths)) > 1 else None
        self.batch_size = batch_size

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in self._perms:
            self._perms = {epoch: self._epoch(epoch)}
        return int(self._perms[epoch][offset])

    def _epoch(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        perm = torch.randperm(self.n, generator=generator)
        if self.lengths is None:
            return perm
        mega = self.batch_size * self.GROUP_BATCHES
        grouped = [
            chunk[torch.sort(self.lengths[chunk], descending=True, stable=True).indices] for chunk in perm.split(mega)
        ]
        batches = list(torch.cat(grouped).split(self.batch_size))
        tail = [batches.pop()] if len(batches[-1]) < self.batch_size else []  # last, so batches stay aligned to steps
        order = torch.randperm(len(batches), generator=generator).tolist()
        return torch.cat([batches[i] for i in order] + tail)
