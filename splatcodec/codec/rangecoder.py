"""Byte-oriented integer range coder and the integer rule that turns prior weights into coding tables.

Used by the compact ``.gsplat`` 1.1 layout (``compact.py``). Everything here is defined by integer
arithmetic so the format does not depend on any library's internals (docs/format.md, "Range coder"
and "Coding tables", is normative; ``tests/golden/tiny11.gsplat`` pins the bytes).

Coder: 32-bit ``range``, ``low`` with one carry bit, bytes out most significant first (the
carry-propagating scheme of LZMA's range coder, minus its always-zero first byte). Every symbol is
coded with integer frequencies that sum to ``2**TABLE_BITS`` (categorical) or ``2**width`` (raw
bits). The stream ends with the fewest bytes that pin the final interval; a decoder reads zero
bytes past the end of its payload, so trailing zero bytes are dropped too (at most MAX_OVERRUN).
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from ..errors import FormatError

#: Frequencies of a coding table sum to 2**TABLE_BITS.
TABLE_BITS = 16
#: The encoder drops at most this many trailing zero bytes, so a decoder of a well-formed stream
#: never reads more than this many bytes past its end (the decoder reads exactly the bytes the
#: encoder wrote before dropping them).
MAX_OVERRUN = 8
_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF


class Table:
    """Integer frequencies (each >= 1, summing to ``2**TABLE_BITS``) and their cumulative starts."""

    __slots__ = ("freq", "start")

    def __init__(self, freq: list[int]) -> None:
        if not freq or min(freq) < 1 or sum(freq) != 1 << TABLE_BITS:
            raise ValueError("a coding table needs frequencies >= 1 summing to 2**TABLE_BITS")
        self.freq = freq
        self.start = [0, *accumulate(freq)][:-1]

    def __len__(self) -> int:
        return len(self.freq)


def build_table(weights: list[int]) -> Table:
    """The coding table of nonnegative integer ``weights`` (the rule of docs/format.md).

    With ``S`` symbols, ``T = 2**TABLE_BITS`` and ``W = sum(weights)``: ``f[q] = 1 + w[q] (T - S) // W``
    (every symbol stays codable), then the remainder ``T - sum(f)`` goes to the first symbol of
    largest ``f``. ``W = 0`` means uniform weights.
    """
    size = len(weights)
    total = 1 << TABLE_BITS
    if not 1 <= size <= total // 2:
        raise ValueError(f"coding tables have 1..{total // 2} symbols, got {size}")
    wsum = sum(weights)
    if wsum == 0:
        weights, wsum = [1] * size, size
    spare = total - size
    freq = [1 + (w * spare) // wsum for w in weights]
    top = max(range(size), key=freq.__getitem__)  # first index of the largest frequency
    freq[top] += total - sum(freq)
    return Table(freq)


class RangeEncoder:
    """Appends symbols; :meth:`finish` returns the bytes."""

    def __init__(self) -> None:
        self._low = 0
        self._range = _MASK32
        self._cache = 0
        self._pending = 0  # bytes held back for a possible carry: the cache byte and 0xFF bytes
        self._first = True
        self._out = bytearray()

    def _shift_low(self) -> None:
        low = self._low
        if low < 0xFF000000 or low > _MASK32:
            carry = low >> 32
            if self._first:  # the cache starts as a placeholder byte that is never written
                self._first = False
            else:
                self._out.append((self._cache + carry) & 0xFF)
            for _ in range(self._pending):
                self._out.append((0xFF + carry) & 0xFF)
            self._pending = 0
            self._cache = (low >> 24) & 0xFF
        else:
            self._pending += 1
        self._low = (low << 8) & _MASK32

    def _code(self, start: int, freq: int, bits: int) -> None:
        r = self._range >> bits
        self._low += r * start
        self._range = r * freq
        while self._range < _TOP:
            self._range <<= 8
            self._shift_low()

    def encode(self, symbol: int, table: Table) -> None:
        """One symbol under ``table`` (``0 <= symbol < len(table)``)."""
        self._code(table.start[symbol], table.freq[symbol], TABLE_BITS)

    def encode_raw(self, value: int, width: int) -> None:
        """``value`` uniform over ``2**width`` (``width`` <= 16; 0 codes nothing)."""
        if width:
            self._code(value, 1, width)

    def finish(self) -> bytes:
        """Terminate: pick the value in [low, low + range) with the most trailing zero bits."""
        low, high = self._low, self._low + self._range - 1
        k = 40
        while k and ((low + (1 << k) - 1) >> k) << k > high:
            k -= 1
        self._low = ((low + (1 << k) - 1) >> k) << k
        for _ in range(5):
            self._shift_low()
        out = bytes(self._out)
        stripped = out.rstrip(b"\x00")
        return out[:max(len(stripped), len(out) - MAX_OVERRUN)]


class RangeDecoder:
    """Counterpart of :class:`RangeEncoder`; reads zero bytes past the end of ``data``.

    :attr:`overrun` counts the bytes read past the end; a well-formed stream never needs more
    than :data:`MAX_OVERRUN` (callers use it to reject payloads that claim more symbols than their
    bytes hold).
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._range = _MASK32
        self._code_value = 0
        for _ in range(4):
            self._code_value = (self._code_value << 8) | self._next()

    def _next(self) -> int:
        pos = self._pos
        self._pos = pos + 1
        return self._data[pos] if pos < len(self._data) else 0

    @property
    def overrun(self) -> int:
        return max(0, self._pos - len(self._data))

    def _target(self, bits: int) -> tuple[int, int]:
        r = self._range >> bits
        value = self._code_value // r
        if value >> bits:
            raise FormatError("corrupt range-coded data (value outside the coding interval)")
        return r, value

    def _consume(self, r: int, start: int, freq: int) -> None:
        self._code_value -= r * start
        self._range = r * freq
        while self._range < _TOP:
            self._range <<= 8
            self._code_value = ((self._code_value << 8) | self._next()) & _MASK32

    def decode(self, table: Table) -> int:
        r, value = self._target(TABLE_BITS)
        symbol = bisect_right(table.start, value) - 1
        self._consume(r, table.start[symbol], table.freq[symbol])
        return symbol

    def decode_raw(self, width: int) -> int:
        if not width:
            return 0
        r, value = self._target(width)
        self._consume(r, value, 1)
        return value
