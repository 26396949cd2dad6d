"""The feature bitstream: binarised quantisation levels, adaptive binary range coding (Li et al. 2019 §II).

The paper says only that the levels are "binarized and entropy encoded". Ours, stated:

* **Header**: one byte, QP2 (so a stream dequantises on its own; the feature dimension is a system
  constant both ends know, e.g. 128 for dlib).
* **Binarisation**, component by component: the level l becomes a magnitude m = l (l >= 0) or
  -l - 1 (l < 0) and a sign — with ``floor`` quantisation the cells l and -l-1 mirror each other, so m
  is symmetric about zero. m is a truncated-unary prefix of at most :data:`UNARY_BINS` bins
  ("m > i?"); when m >= :data:`UNARY_BINS` the rest, m - :data:`UNARY_BINS`, follows as an order-0
  Exp-Golomb code in bypass bins (p = 1/2); then the sign bin.
* **Adaptive contexts**: the sign and each unary position i have their own context whose probability
  of a 1 is the Krichevsky–Trofimov estimate (n1 + 1/2) / (n + 1) of the bins that context has coded
  so far in this stream (every stream starts from the uniform state), as CABAC adapts per context.
* **Coder**: constriction 0.5's range coder (``constriction.stream.queue``, a maintained Rust library)
  with a ``Bernoulli(p, perfect=False)`` model per bin. It emits whole 32-bit words, stored
  big-endian: the rate is the header byte plus 4 bytes per word, on average ~16 bits above the
  bins' information content -sum log2 p (measured; docs/tfqi.md).
"""

from __future__ import annotations

import numpy as np

from cdfv.errors import CdfvError

#: Context-coded bins of the truncated-unary magnitude prefix.
UNARY_BINS = 12
#: Context 0 codes the sign; context 1 + i the unary bin i.
N_CONTEXTS = 1 + UNARY_BINS
_BYPASS = -1


class FeatureBitstreamError(CdfvError, ValueError):
    """A feature bitstream that cannot be decoded (truncated, wrong header)."""


def _family():  # type: ignore[no-untyped-def]
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)


def binarise(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bins, contexts) of ``levels`` in coding order; context -1 marks a bypass bin."""
    bins: list[int] = []
    ctx: list[int] = []
    for level in np.asarray(levels, dtype=np.int64).ravel().tolist():
        m = level if level >= 0 else -level - 1
        for i in range(min(m, UNARY_BINS)):
            bins.append(1)
            ctx.append(1 + i)
        if m < UNARY_BINS:
            bins.append(0)
            ctx.append(1 + m)
        else:
            v = m - UNARY_BINS + 1  # order-0 Exp-Golomb of m - UNARY_BINS: N zeros, then v in N + 1 bits
            n = v.bit_length() - 1
            code = [0] * n + [int(b) for b in bin(v)[2:]]
            bins.extend(code)
            ctx.extend([_BYPASS] * len(code))
        bins.append(1 if level < 0 else 0)
        ctx.append(0)
    return np.asarray(bins, dtype=np.int32), np.asarray(ctx, dtype=np.int64)


def adaptive_probabilities(bins: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    """P(bin = 1) each bin is coded with: KT estimate from the earlier bins of its context; 1/2 for bypass."""
    p = np.full(bins.shape, 0.5, dtype=np.float64)
    for k in range(N_CONTEXTS):
        idx = np.flatnonzero(contexts == k)
        if idx.size == 0:
            continue
        b = bins[idx].astype(np.int64)
        ones_before = np.cumsum(b) - b
        seen_before = np.arange(idx.size, dtype=np.int64)
        p[idx] = (ones_before + 0.5) / (seen_before + 1.0)
    return p


def _words_to_bytes(words: np.ndarray) -> bytes:
    return np.asarray(words, dtype=np.uint32).astype(">u4").tobytes()


def _bytes_to_words(payload: bytes) -> np.ndarray:
    pad = (-len(payload)) % 4
    return np.frombuffer(payload + b"\x00" * pad, dtype=">u4").astype(np.uint32)


def encode_levels(levels: np.ndarray, qp: int) -> bytes:
    """One feature's levels (1-D int) at ``qp`` -> its bitstream bytes."""
    import constriction

    if not 0 <= int(qp) <= 255:
        raise ValueError(f"QP {qp} does not fit the 1-byte header")
    levels = np.asarray(levels, dtype=np.int64).ravel()
    bins, ctx = binarise(levels)
    enc = constriction.stream.queue.RangeEncoder()
    if bins.size:
        enc.encode(bins, _family(), adaptive_probabilities(bins, ctx))
    return bytes([int(qp)]) + _words_to_bytes(enc.get_compressed())


def decode_levels(blob: bytes, dim: int) -> tuple[int, np.ndarray]:
    """(QP, levels) of a feature bitstream holding ``dim`` components."""
    import constriction

    if len(blob) < 1:
        raise FeatureBitstreamError("empty feature bitstream (no QP header)")
    qp = blob[0]
    words = _bytes_to_words(bytes(blob[1:]))
    dec = constriction.stream.queue.RangeDecoder(words)
    Bernoulli = constriction.stream.model.Bernoulli
    ones = [0] * N_CONTEXTS
    seen = [0] * N_CONTEXTS

    def coded(k: int) -> int:
        b = int(dec.decode(Bernoulli((ones[k] + 0.5) / (seen[k] + 1.0), perfect=False)))
        ones[k] += b
        seen[k] += 1
        return b

    half = Bernoulli(0.5, perfect=False)
    out = np.empty(dim, dtype=np.int32)
    try:
        for j in range(dim):
            m = 0
            while m < UNARY_BINS and coded(1 + m):
                m += 1
            if m == UNARY_BINS:
                n = 0
                while int(dec.decode(half)) == 0:
                    n += 1
                    if n > 40:
                        raise FeatureBitstreamError("Exp-Golomb prefix longer than 40 bins: corrupt stream")
                v = 1
                for _ in range(n):
                    v = (v << 1) | int(dec.decode(half))
                m = UNARY_BINS + v - 1
            out[j] = -m - 1 if coded(0) else m
    except (RuntimeError, ValueError, AssertionError) as err:
        raise FeatureBitstreamError(f"feature bitstream ({len(blob)} bytes) does not decode: {err}") from None
    return qp, out
