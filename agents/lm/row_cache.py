"""RowCache: a KV cache in which every row has its own length.

``transformers``' ``DynamicCache`` holds one length for the whole batch, so rows that grow
by different amounts (one row's user just replied, the others are decoding) must pad the
short rows with masked slots, and the padding piles up until the cache is rebuilt. Here
each row writes its new keys and values at its own length, into buffers that are
allocated once: a row's cached context is always its context, contiguous from slot 0, so
attention never runs over padding, no step concatenates (copies) the cache, and nothing
is ever re-prefilled.

The caller (:class:`agents.lm.sampler.KVSampler`) drives it one forward at a time:
:meth:`RowCache.begin` says which rows the forward feeds, where each row's cached context
ends and how many of the block's columns are its real tokens, and returns the 4-D
attention mask of that forward (a row's query at slot ``s`` sees slots ``0..s``). Models
take a prepared 4-D mask as it is, so no ``transformers`` mask code runs. A forward may
feed a subset of the rows (:meth:`begin` with ``rows``): their new slots are written in
place and their buffers gathered for the attention, so that a few rows with long news do not
make every row compute a block as wide as theirs.

Columns past a row's real tokens are padding: their keys land in slots past the row's end,
which no real query sees and the row's next tokens overwrite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

try:  # transformers' base class, so that models that check ``isinstance(cache, Cache)`` agree
    from transformers.cache_utils import Cache
except ImportError:  # pragma: no cover - transformers is a dependency
    Cache = object  # type: ignore[assignment,misc]


class RowCache(Cache):  # type: ignore[misc]
    """Per-row KV buffers of ``capacity`` slots for ``num_rows`` rows (grown on demand).

    Args:
        num_rows: Rows of the batch.
        capacity: Slots per row to allocate at first (the longest context expected).
    """

    def __init__(self, num_rows: int, capacity: int) -> None:
        # Not Cache.__init__: its layer objects concatenate; this class keeps its own buffers.
        self.num_rows = int(num_rows)
        self.capacity = max(int(capacity), 1)
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        # transformers' mask code reads the layer kinds (sliding, linear) from this list;
        # empty, it takes every layer as full attention, and then returns our 4-D mask as is.
        self.layers: list[Any] = []
        #: Forwards' layer updates so far: a forward that did not update every layer
        #: ignored the cache (:class:`agents.lm.sampler.KVCacheError`).
        self.updates = 0
        #: Real tokens each fed row brings in the current forward (read by benchmarks).
        self.counts: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self._slots: torch.Tensor | None = None
        self._kv = 0

    # -- what the model calls --------------------------------------------------------------

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
        *args: Any, **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Write this forward's keys and values at each row's slots; return what it attends."""
        if self._slots is None:
            raise RuntimeError("RowCache.update() outside a forward; call begin() first.")
        if layer_idx == len(self.keys):
            b, h, _, d = key_states.shape
            shape = (self.num_rows, h, self.capacity, value_states.shape[-1])
            self.keys.append(key_states.new_zeros((self.num_rows, h, self.capacity, d)))
            self.values.append(value_states.new_zeros(shape))
        self.updates += 1
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        if self._rows is None:
            index = self._slots[:, None, :, None]
            keys.scatter_(2, index.expand_as(key_states), key_states)
            values.scatter_(2, index.expand_as(value_states), value_states)
            return keys[:, :, : self._kv], values[:, :, : self._kv]
        # A subset of the rows: write their new slots in place, then gather what they
        # attend (one copy; gathering first and writing the copy back costs two).
        # index_select, not keys[rows, :, :kv]: the same copy, without advanced indexing's
        # general machinery (8x faster for 3 of 16 rows on a CPU).
        rows, slots, kv = self._rows, self._slots, self._kv
        keys[rows[:, None], :, slots] = key_states.transpose(1, 2)
        values[rows[:, None], :, slots] = value_states.transpose(1, 2)
        return keys[:, :, :kv].index_select(0, rows), values[:, :, :kv].index_select(0, rows)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """The widest attention of the current forward (models that derive positions from
        it are given explicit ``position_ids`` instead)."""
        return self._kv

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return self.capacity

    @property
    def is_compileable(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.keys)

    # -- what the sampler calls -------------------------------------------------------------

    def begin(
        self, lengths: np.ndarray, counts: np.ndarray, width: int, rows: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
    ) -> torch.Tensor:  # fmt: skip
        """Prepare a forward of a ``(len(rows), width)`` block; returns its attention mask.

        Args:
            lengths: Cached tokens of each fed row (where its new tokens go).
            counts: Real tokens of each fed row in the block (0: the row idles).
            width: Columns of the block.
            rows: The cache rows fed, ascending (``None``: every row, in order).
            dtype: The model's dtype (the mask is additive: 0 or the dtype's minimum).
            device: The model's device.

        Returns:
            ``(len(rows), 1, width, kv)`` additive mask: slot ``s`` is visible to the query
            in column ``j`` of row ``r`` when ``s <= lengths[r] + j``.
        """
        need = int((lengths + counts).max()) if lengths.size else 0
        if need >= self.capacity:
            # One slot to spare: a row whose real tokens end on the last slot would have
            # its padding columns clipped onto that slot, over its last real key.
            self._grow(max(need + 1, 2 * self.capacity))
        last = self.capacity - 1
        # Padding columns may point past the buffer; they are clipped onto its last slot,
        # beyond every real token (a real token's slot is below `need < capacity`).
        slots = np.minimum(lengths[:, None] + np.arange(width)[None, :], last)
        self._kv = min(int(lengths.max()) + width, self.capacity) if lengths.size else width
        self._slots = torch.as_tensor(slots, device=device)
        self._rows = None if rows is None else torch.as_tensor(rows, device=device)
        self.counts = torch.as_tensor(counts)
        visible = np.arange(self._kv)[None, None, :] <= slots[:, :, None]
        mask = torch.zeros(visible.shape, dtype=dtype)
        mask.masked_fill_(torch.as_tensor(~visible), torch.finfo(dtype).min)
        return mask[:, None].to(device)

    def end(self) -> None:
        """The forward is over (its slots are forgotten, so a stray update fails)."""
        self._slots, self._rows = None, None

    def keep(self, index: np.ndarray) -> None:
        """Keep only the rows at ``index`` (in that order): finished rows leave the batch."""
        where = torch.as_tensor(index, dtype=torch.long)
        self.keys = [k.index_select(0, where.to(k.device)) for k in self.keys]
        self.values = [v.index_select(0, where.to(v.device)) for v in self.values]
        self.num_rows = int(where.numel())

    def _grow(self, capacity: int) -> None:
        """Reallocate every buffer with ``capacity`` slots (a context longer than expected)."""
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                new = old.new_zeros((*old.shape[:2], capacity, old.shape[-1]))
                new[:, :, : old.shape[2]] = old
                buffers[i] = new
        self.capacity = capacity
