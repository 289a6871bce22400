"""What a worker sends, made smaller: top-k sparsification and uniform quantisation.

A message is a change of natural parameters, ``(2 D,)``: the D shift changes, then the D precision
changes; coordinate j's two numbers belong together (a mean is shift / precision, so sending one without
the other would move it arbitrarily). A compressor turns such a vector into a list of tensors of fixed
shapes (so that every worker's message fits one ``gather``), counts its bytes, and decodes it. The part a
message leaves out is not lost: a worker updates its site by what was received, and its next change, measured
from that site, contains the rest again.

>>> topk = TopK(0.5)
>>> change = torch.tensor([0.1, -3.0, 0.0, 1.0])         # shifts of coordinates 0, 1; then their precisions
>>> topk.decode(topk.encode(change), 4), topk.nbytes(4)  # coordinate 1 only: two values and one index
(tensor([ 0., -3.,  0.,  1.]), 12)
"""
from __future__ import annotations

import math

import torch

__all__ = ["Compressor", "NoCompression", "TopK", "Quantize", "make", "message_bytes"]


def message_bytes(parts: list) -> int:
    """Bytes of an encoded message: the tensors' elements times their sizes."""
    return sum(p.numel() * p.element_size() for p in parts)


def _halves(x: torch.Tensor):
    if x.dim() != 1 or x.numel() % 2:
        raise ValueError(f"a message is a (2 D,) vector (shifts, then precisions), got shape {tuple(x.shape)}")
    return x.chunk(2)


class Compressor:
    """``encode(x, priority)`` a ``(2 D,)`` message into fixed-shape parts (``priority``, ``(D,)``: how much each
    coordinate's change matters, for compressors that choose); ``decode(parts, 2 D)`` gives what arrives."""

    name = "none"

    def encode(self, x: torch.Tensor, priority: torch.Tensor | None = None) -> list:
        raise NotImplementedError

    def decode(self, parts: list, size: int) -> torch.Tensor:
        raise NotImplementedError

    def nbytes(self, size: int) -> int:
        """Bytes of one encoded ``(size,)`` message."""
        return message_bytes(self.encode(torch.zeros(size)))

    def __repr__(self):
        return type(self).__name__ + "()"


class NoCompression(Compressor):
    """Send the float32 vector as it is: 8 D bytes."""

    def encode(self, x, priority=None):
        _halves(x)
        return [x.float()]

    def decode(self, parts, size):
        return parts[0]


class TopK(Compressor):
    """Send the ``k = ceil(fraction D)`` coordinates of highest ``priority``, both of their numbers (float32) and
    their int32 index: 12 k bytes. ``priority`` defaults to ``|shift change| + |precision change|``; the posterior
    server passes how far each change would move the posterior: ``|Δmean| / sd + |Δprecision| / precision``."""

    def __init__(self, fraction: float):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)
        self.name = f"top-{100 * self.fraction:g}%"

    def k(self, num_coordinates: int) -> int:
        return max(1, math.ceil(self.fraction * num_coordinates))

    def encode(self, x, priority=None):
        shift, precision = _halves(x)
        if priority is None:
            priority = shift.abs() + precision.abs()
        index = priority.topk(self.k(len(shift)), sorted=False).indices
        return [torch.cat([shift[index], precision[index]]).float(), index.to(torch.int32)]

    def decode(self, parts, size):
        values, index = parts
        out = torch.zeros(size, dtype=values.dtype)
        index = index.long()
        k = len(index)
        out[index] = values[:k]
        out[size // 2 + index] = values[k:]
        return out

    def __repr__(self):
        return f"TopK(fraction={self.fraction})"


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes below ``2^bits`` packed ``bits`` bits each into ``ceil(len * bits / 8)`` bytes (uint8)."""
    if bits == 8:
        return codes.to(torch.uint8)
    planes = ((codes.to(torch.int32).unsqueeze(1) >> torch.arange(bits, dtype=torch.int32)) & 1).reshape(-1)
    planes = torch.cat([planes, planes.new_zeros((-len(planes)) % 8)]).reshape(-1, 8)
    return (planes << torch.arange(8, dtype=torch.int32)).sum(1).to(torch.uint8)


def _unpack(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """The ``count`` codes that :func:`_pack` packed."""
    if bits == 8:
        return packed[:count].to(torch.int32)
    planes = ((packed.to(torch.int32).unsqueeze(1) >> torch.arange(8, dtype=torch.int32)) & 1).reshape(-1)
    planes = planes[:count * bits].reshape(count, bits)
    return (planes << torch.arange(bits, dtype=torch.int32)).sum(1)


class Quantize(Compressor):
    """Round each change to one of ``2^bits`` evenly spaced levels between its half's min and max (shifts and
    precisions have their own ranges): the codes packed ``bits`` bits each and two float32 numbers per half,
    ``2 ceil(D bits / 8) + 16`` bytes (2 D + 16 at 8 bits, about 0.75 D + 16 at 3). The error is at most half
    a level."""

    def __init__(self, bits: int = 8):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"bits must be an integer from 1 to 8, got {bits!r}")
        self.bits = bits
        self.name = f"{bits}-bit"

    def encode(self, x, priority=None):
        parts = []
        levels = 2 ** self.bits - 1
        for half in _halves(x):
            lo, hi = half.min(), half.max()
            step = (hi - lo) / levels if hi > lo else torch.ones(())
            codes = torch.round((half - lo) / step).clamp_(0, levels)
            parts += [_pack(codes, self.bits), torch.stack([lo, step]).float()]
        return parts

    def decode(self, parts, size):
        halves = []
        for packed, (lo, step) in ((parts[0], parts[1]), (parts[2], parts[3])):
            halves.append(lo + step * _unpack(packed, self.bits, size // 2).float())
        return torch.cat(halves)

    def __repr__(self):
        return f"Quantize(bits={self.bits})"


def make(spec) -> Compressor:
    """``None`` or ``"none"``, a :class:`Compressor`, ``"topk:0.1"`` (the top 10 %) or ``"8bit"`` (1 to 8 bits)."""
    if spec is None or spec == "none":
        return NoCompression()
    if isinstance(spec, Compressor):
        return spec
    if isinstance(spec, str) and spec.startswith("topk:"):
        return TopK(float(spec.split(":", 1)[1]))
    if isinstance(spec, str) and spec.endswith("bit") and spec[:-3].isdigit():
        return Quantize(int(spec[:-3]))
    raise ValueError(f"unknown compression {spec!r}; use None, 'topk:FRACTION' (e.g. 'topk:0.1') or 'BITSbit' "
                     "(e.g. '8bit')")
