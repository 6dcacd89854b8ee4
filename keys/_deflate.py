"""A canonical zlib stream (RFC 1950 / RFC 1951) for status-list bitstrings.

``zlib.compress`` output is not fixed by any standard: it differs between zlib
releases and forks (zlib-ng, Cloudflare zlib, ...), so the signed bytes of a
status list, and every test vector that embeds one, would change with the
machine that produced them.  :func:`compress` depends on nothing but its
input (docs/SPEC.md, section 5):

* header ``0x78 0x01``; Adler-32 of the input (big-endian) as trailer;
* the input is cut into maximal runs of one byte value; a run of at least
  :data:`MIN_RUN` bytes is a fixed-Huffman block (BTYPE 01): the byte as a
  literal, then, for the ``r`` copies left, distance-1 matches of length 258
  while ``r >= 261``; then ``r`` = 259 or 260 as two matches ``r - 3`` and 3,
  ``3 <= r <= 258`` as one match, ``r`` = 1 or 2 as literals; end-of-block;
* the bytes between such runs are stored blocks (BTYPE 00) of at most
  65,535 bytes; the last block of the stream has BFINAL set.

Any inflater reads it (it is plain deflate); :func:`compress` is only the
issuer's choice of encoding.  Verifiers accept any valid zlib stream.
"""

from __future__ import annotations

import re
import zlib

__all__ = ["MIN_RUN", "compress"]

MIN_RUN = 8  # shorter runs stay inside stored blocks
_MAX_STORED = 65_535
_MAX_MATCH = 258
_RUN_START = re.compile(rb"(.)\1{%d}" % (MIN_RUN - 1), re.DOTALL)  # leftmost run of MIN_RUN
_SAME = [re.compile(re.escape(bytes([v])) + b"+") for v in range(256)]  # extends it (fast path)


def _reverse(code: int, length: int) -> int:
    """Huffman codes go to the stream most significant bit first."""
    out = 0
    for _ in range(length):
        out = (out << 1) | (code & 1)
        code >>= 1
    return out


def _literal(value: int) -> tuple[int, int]:
    """(bits, count) of a fixed-Huffman literal/length symbol (RFC 1951 3.2.6)."""
    if value < 144:
        return _reverse(0x30 + value, 8), 8
    if value < 256:
        return _reverse(0x190 + value - 144, 9), 9
    if value < 280:
        return _reverse(value - 256, 7), 7
    return _reverse(0xC0 + value - 280, 8), 8


# (symbol, extra bits, base length) of the deflate length codes 257..285
_LENGTH_CODES: list[tuple[int, int, int]] = []
_base = 3
for _sym in range(257, 285):
    _extra = 0 if _sym < 265 else (_sym - 261) // 4
    _LENGTH_CODES.append((_sym, _extra, _base))
    _base += 1 << _extra
_LENGTH_CODES.append((285, 0, 258))


def _match(length: int) -> tuple[int, int]:
    """(bits, count) of a match of ``length`` (3..258) at distance 1."""
    for sym, extra, base in reversed(_LENGTH_CODES):
        if length >= base:
            bits, count = _literal(sym)
            bits |= (length - base) << count
            count += extra
            return bits, count + 5  # distance code 0 (distance 1): five zero bits
    raise ValueError(length)  # pragma: no cover - lengths are 3..258


_LITERALS = [_literal(v) for v in range(256)]
_MATCHES = [(0, 0)] * 3 + [_match(n) for n in range(3, _MAX_MATCH + 1)]
_END_BITS, _END_COUNT = _literal(256)
_bits, _count = _MATCHES[_MAX_MATCH]
assert _count == 13  # fixed code 285 (8 bits) + distance code 0 (5 bits)
_EIGHT_MATCHES = sum(_bits << (13 * i) for i in range(8)).to_bytes(13, "little")


class _BitWriter:
    """Deflate bit order: values are packed least significant bit first."""

    __slots__ = ("acc", "count", "out")

    def __init__(self) -> None:
        self.out = bytearray(b"\x78\x01")
        self.acc = 0
        self.count = 0

    def bits(self, value: int, count: int) -> None:
        self.acc |= value << self.count
        self.count += count
        whole = self.count >> 3
        if whole:
            self.out += (self.acc & ((1 << (whole * 8)) - 1)).to_bytes(whole, "little")
            self.acc >>= whole * 8
            self.count &= 7

    def align(self) -> None:
        if self.count:
            self.out.append(self.acc)
            self.acc = 0
            self.count = 0

    def stored(self, data: bytes, final: bool) -> None:
        self.bits(int(final), 3)  # BFINAL, BTYPE = 00
        self.align()
        n = len(data)
        self.out += n.to_bytes(2, "little") + (n ^ 0xFFFF).to_bytes(2, "little") + data

    def run(self, value: int, length: int, final: bool) -> None:
        self.bits(int(final) | 2, 3)  # BFINAL, BTYPE = 01 (fixed Huffman)
        self.bits(*_LITERALS[value])
        rest = length - 1
        full = 0 if rest < _MAX_MATCH + 3 else (rest - _MAX_MATCH - 3) // _MAX_MATCH + 1
        if full:
            rest -= full * _MAX_MATCH
            eights, single = divmod(full, 8)
            if eights:  # eight 13-bit codes are 13 whole bytes: repeat them as bytes
                self.bits(int.from_bytes(_EIGHT_MATCHES * eights, "little"), 104 * eights)
            for _ in range(single):
                self.bits(*_MATCHES[_MAX_MATCH])
        if rest > _MAX_MATCH:  # 259 or 260: two matches, (rest - 3) and 3
            self.bits(*_MATCHES[rest - 3])
            rest = 3
        if rest >= 3:
            self.bits(*_MATCHES[rest])
        else:
            for _ in range(rest):
                self.bits(*_LITERALS[value])
        self.bits(_END_BITS, _END_COUNT)


def compress(data: bytes) -> bytes:
    """The canonical zlib stream of ``data`` (see the module docstring)."""
    segments: list[tuple[int, int, int]] = []  # (start, end, run byte or -1 for stored)
    pos = 0
    while (m := _RUN_START.search(data, pos)) is not None:
        start = m.start()
        end = _SAME[data[start]].match(data, start).end()  # type: ignore[union-attr]  # matches
        while pos < start:
            segments.append((pos, min(pos + _MAX_STORED, start), -1))
            pos = segments[-1][1]
        segments.append((start, end, data[start]))
        pos = end
    while pos < len(data) or not segments:
        segments.append((pos, min(pos + _MAX_STORED, len(data)), -1))
        pos = segments[-1][1]
    w = _BitWriter()
    last = len(segments) - 1
    for k, (start, end, value) in enumerate(segments):
        if value < 0:
            w.stored(data[start:end], k == last)
        else:
            w.run(value, end - start, k == last)
    w.align()
    return bytes(w.out) + zlib.adler32(data).to_bytes(4, "big")
