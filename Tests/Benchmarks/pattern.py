"""Reads the capture timestamp that rtcam's test pattern draws into every frame, from a decoded luma
plane: the Python twin of `TestPatternDecoder.readTimestamp` (Sources/MediaSources/TestPattern.swift).

The code is 40 blocks, most significant first: start pattern 1011, 32 data bits (capture time in ms
of CLOCK_MONOTONIC, truncated to 32 bits), 4 check bits (XOR of the eight data nibbles). A block is
black (0) or white (1); its value is the mean of its centre (half the block size square) >= 128.
"""

from __future__ import annotations

import time
from typing import Optional

START_PATTERN = (1, 0, 1, 1)
DATA_BITS = 32
CHECK_BITS = 4
BIT_COUNT = len(START_PATTERN) + DATA_BITS + CHECK_BITS
MARGIN = 16


class StripLayout:
    """Where the blocks are, a pure function of the frame size (TimestampStripLayout)."""

    def __init__(self, width: int, height: int):
        if width < 64 or height < 64:
            raise ValueError(f"{width}x{height} is too small for the timestamp strip")
        self.block = max(16, (width // 40) & ~7)
        self.per_row = (width - 2 * MARGIN) // self.block
        if self.per_row <= 0:
            raise ValueError("no room for a block row")
        rows = (BIT_COUNT + self.per_row - 1) // self.per_row
        self.band_height = MARGIN + rows * self.block + MARGIN
        if self.band_height > height // 2:
            raise ValueError("strip taller than half the picture")

    def origin(self, index: int) -> tuple[int, int]:
        return MARGIN + (index % self.per_row) * self.block, MARGIN + (index // self.per_row) * self.block


def check_nibble(value: int) -> int:
    nibble = 0
    for index in range(8):
        nibble ^= (value >> (4 * index)) & 0xF
    return nibble


def read_timestamp(luma, width: int, height: int, source_size: Optional[tuple[int, int]] = None) -> Optional[int]:
    """`luma`: a 2-D numpy array (rows x at least `width` columns) of 8-bit luma. Returns the
    32-bit millisecond timestamp, or None if the start pattern or the check nibble is wrong.

    `source_size`: the size the pattern was drawn at, when the picture was scaled before encoding
    (CPU adaptation): the blocks are where that size's layout puts them, scaled."""
    drawn_width, drawn_height = source_size or (width, height)
    layout = StripLayout(drawn_width, drawn_height)
    scale_x, scale_y = width / drawn_width, height / drawn_height
    block = layout.block
    inset = block // 4
    bits = []
    for index in range(BIT_COUNT):
        x, y = layout.origin(index)
        top, bottom = int((y + inset) * scale_y + 0.5), int((y + block - inset) * scale_y + 0.5)
        left, right = int((x + inset) * scale_x + 0.5), int((x + block - inset) * scale_x + 0.5)
        centre = luma[top:max(top + 1, bottom), left:max(left + 1, right)]
        bits.append(1 if int(centre.sum()) // max(1, centre.size) >= 128 else 0)
    return decode_bits(bits)


def decode_bits(bits) -> Optional[int]:
    """The 40 block values, in order, to the 32-bit timestamp (None: bad start pattern or check)."""
    bits = list(bits)
    if len(bits) != BIT_COUNT or tuple(bits[:4]) != START_PATTERN:
        return None
    value = 0
    for bit in bits[4:36]:
        value = value << 1 | bit
    check = 0
    for bit in bits[36:40]:
        check = check << 1 | bit
    return value if check == check_nibble(value) else None


def luma_of(frame):
    """The luma plane of an av.VideoFrame (yuv420p as aiortc decodes H.264) as a 2-D numpy view."""
    import numpy

    plane = frame.planes[0]
    rows = numpy.frombuffer(plane, dtype=numpy.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :frame.width]


def now_milliseconds_32() -> int:
    """CLOCK_MONOTONIC in ms, truncated to 32 bits: the clock the pattern's timestamp is on."""
    return (time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1_000_000) & 0xFFFF_FFFF


def unwrap_milliseconds(timestamp: int, near_ms: int) -> int:
    """The full CLOCK_MONOTONIC millisecond value whose low 32 bits are `timestamp`, nearest `near_ms`."""
    value = (near_ms & ~0xFFFF_FFFF) | timestamp
    if value - near_ms > 1 << 31:
        value -= 1 << 32
    elif near_ms - value > 1 << 31:
        value += 1 << 32
    return value


def age_milliseconds(timestamp: int) -> int:
    """Milliseconds from the stamped capture time to now (wraps like the 32-bit code)."""
    return (now_milliseconds_32() - timestamp) & 0xFFFF_FFFF
