"""QR images for VietQR payloads: qrcode computes the module matrix, PNG (no PIL) and SVG are written here."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import qrcode
import qrcode.constants
import qrcode.exceptions
import qrcode.util

from servicekit.errors import InvalidArgument

DEFAULT_SCALE = 8
DEFAULT_BORDER = 4  # the quiet zone the QR standard asks for
MAX_SCALE = 40  # keeps the largest image (version 40) around 7,400 px a side
MAX_BORDER = 16
_ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
_MASK_PATTERNS = range(8)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAYSCALE_1_BIT = (1, 0, 0, 0, 0)  # bit depth, colour type, compression, filter, interlace
_PNG_FILTER_NONE = b"\x00"
_ZLIB_LEVEL = 1  # level 6 would halve a ~1 kB file but triple the time of the whole PNG step

_DARK_RUN = re.compile(r"1+")
# Dark-light-dark(3)-light-dark with four light modules on one side: looks like a finder pattern to a scanner.
_FINDER_LIKE_PATTERNS = ("10111010000", "00001011101")
_FINDER_LIKE_LENGTH = 11


@dataclass(frozen=True)
class QrModules:
    """A code's module matrix without quiet zone: bit ``size - 1 - column`` of ``rows[row]`` is set when dark."""

    size: int
    rows: tuple[int, ...]

    def is_dark(self, row: int, column: int) -> bool:
        return bool(self.rows[row] >> (self.size - 1 - column) & 1)

    def row_text(self, row: int) -> str:
        """The row as ``0``/``1`` characters, ``1`` for dark."""
        return format(self.rows[row], f"0{self.size}b")


_BYTE_TO_DIGIT = bytes.maketrans(b"\x00\x01", b"01")


def _bits_of(flags: list[bool]) -> int:
    """A row of flags as an integer, first flag in the highest bit."""
    return int(bytes(flags).translate(_BYTE_TO_DIGIT), 2)


# The whole matrix is scored as one integer: each row takes ``size + 1`` bits, the top one a zero guard, so a
# shift by one compares horizontal neighbours and a shift by ``size + 1`` vertical ones, all rows at once.
def _stride(size: int) -> int:
    return size + 1


def _pack(rows: list[int] | tuple[int, ...], size: int) -> int:
    packed = 0
    for row in rows:
        packed = (packed << _stride(size)) | row
    return packed


def _unpack(packed: int, size: int) -> tuple[int, ...]:
    full_row = (1 << size) - 1
    stride = _stride(size)
    return tuple((packed >> (stride * (size - 1 - index))) & full_row for index in range(size))


@dataclass(frozen=True)
class _Layout:
    """Bit masks of the packed matrix of one size (see ``_pack``)."""

    horizontal_pairs: int  # bit j of a row compares columns at bits j and j + 1 of that row
    vertical_pairs: int  # bit j of a row compares it with the row above
    horizontal_starts: int  # lowest bit of every 11-module window inside a row
    vertical_starts: int  # lowest row of every 11-module window inside a column


@lru_cache(maxsize=64)
def _layout(size: int) -> _Layout:
    def repeated(row: int, count: int) -> int:
        return _pack([row] * count, size)

    full_row = (1 << size) - 1
    window = _FINDER_LIKE_LENGTH - 1
    return _Layout(
        horizontal_pairs=repeated(full_row >> 1, size),
        vertical_pairs=repeated(full_row, size - 1),
        horizontal_starts=repeated(full_row >> window, size),
        vertical_starts=repeated(full_row, size - window),
    )


def _count_finder_like(packed: int, step: int, starts: int) -> int:
    """Windows, stepping ``step`` bits per module, that match one of the finder-like patterns."""
    count = 0
    for pattern in _FINDER_LIKE_PATTERNS:
        matches = starts
        for offset, module in enumerate(reversed(pattern)):
            shifted = packed >> (step * offset)
            matches &= shifted if module == "1" else ~shifted
        count += matches.bit_count()
    return count


def _penalty(packed: int, size: int) -> int:
    """ISO 18004 mask penalty, scored exactly as qrcode's ``util.lost_point`` so both pick the same mask."""
    layout = _layout(size)
    stride = _stride(size)
    same_right = ~(packed ^ (packed >> 1)) & layout.horizontal_pairs
    same_above = ~(packed ^ (packed >> stride)) & layout.vertical_pairs
    # A run of n >= 5 equal modules costs n - 2 = 3 * (runs of 5 inside it) - 2 * (runs of 6 inside it).
    five_across = same_right & (same_right >> 1) & (same_right >> 2) & (same_right >> 3)
    six_across = five_across & (same_right >> 4)
    five_down = same_above & (same_above >> stride) & (same_above >> 2 * stride) & (same_above >> 3 * stride)
    six_down = five_down & (same_above >> 4 * stride)
    score = 3 * (five_across.bit_count() + five_down.bit_count()) - 2 * (six_across.bit_count() + six_down.bit_count())
    score += 3 * (same_right & same_above & (same_above >> 1)).bit_count()  # 2x2 blocks of one colour
    finder_like = _count_finder_like(packed, 1, layout.horizontal_starts)
    finder_like += _count_finder_like(packed, stride, layout.vertical_starts)
    score += 40 * finder_like
    score += 10 * int(abs(float(packed.bit_count()) / size**2 * 100 - 50) / 5)
    return score


_data_regions: dict[int, int] = {}  # version -> packed modules that carry data (the ones a mask flips)


class _DataRegionQRCode(qrcode.QRCode):
    """qrcode's encoder that also records, once per version, which modules carry data."""

    def map_data(self, data: list[int], mask_pattern: int) -> None:
        # Function patterns are in place and data modules are still None when qrcode maps the data.
        if self.version not in _data_regions:
            rows = [_bits_of([cell is None for cell in row]) for row in self.modules]
            _data_regions[self.version] = _pack(rows, self.modules_count)
        super().map_data(data, mask_pattern)


@lru_cache(maxsize=512)
def _mask(size: int, pattern: int) -> int:
    """Packed modules that ``pattern`` flips, over the whole matrix (the caller restricts it to the data)."""
    flips = qrcode.util.mask_func(pattern)
    return _pack([_bits_of([flips(row, column) for column in range(size)]) for row in range(size)], size)


@lru_cache(maxsize=512)
def _format_overlay(version: int, pattern: int) -> int:
    """Packed dark modules of the format (and version) information for ``pattern``, placed by qrcode."""
    placer = qrcode.QRCode(version=version, error_correction=_ERROR_CORRECTION)
    placer.modules_count = size = version * 4 + 17
    placer.modules = [[None] * size for _ in range(size)]
    placer.setup_type_info(False, pattern)
    if version >= 7:
        placer.setup_type_number(False)
    return _pack([_bits_of([cell is True for cell in row]) for row in placer.modules], size)


def qr_modules(payload: str) -> QrModules:
    """Module matrix of ``payload`` at error correction M, identical to what ``qrcode`` itself produces.

    qrcode picks the mask by re-encoding the matrix eight times in pure Python, which costs three quarters of
    ``qrcode.make``; here qrcode maps the data once and the other seven masks are derived with integer XORs.
    """
    if not isinstance(payload, str) or not payload:
        raise InvalidArgument.single("payload", "must be non-empty text")
    encoder = _DataRegionQRCode(error_correction=_ERROR_CORRECTION, border=0)
    encoder.add_data(payload)
    try:
        # qrcode 8 reports overflow as a ValueError for version 41 before its own DataOverflowError.
        encoder.best_fit()
    except (qrcode.exceptions.DataOverflowError, ValueError):
        raise InvalidArgument.single("payload", f"is too long for a QR code ({len(payload)} characters)") from None
    try:
        # Test mode leaves format information light, which is how qrcode scores the candidate masks.
        encoder.makeImpl(True, 0)
    except ValueError as error:
        # qrcode's Reed-Solomon step fails on a data block that is entirely zero bytes (e.g. "0" * 700).
        raise InvalidArgument.single("payload", f"cannot be encoded by qrcode: {error}") from None
    version, size = encoder.version, encoder.modules_count
    mapped_with_first_mask = _pack([_bits_of(row) for row in encoder.modules], size)
    first_mask, data_region = _mask(size, 0), _data_regions[version]

    def candidate(pattern: int) -> int:
        return mapped_with_first_mask ^ ((first_mask ^ _mask(size, pattern)) & data_region)

    best = min(_MASK_PATTERNS, key=lambda pattern: _penalty(candidate(pattern), size))
    return QrModules(size, _unpack(candidate(best) | _format_overlay(version, best), size))


def _check_geometry(scale: int, border: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= MAX_SCALE:
        raise InvalidArgument.single("scale", f"must be 1 to {MAX_SCALE} pixels per module, found {scale!r}")
    if isinstance(border, bool) or not isinstance(border, int) or not 0 <= border <= MAX_BORDER:
        raise InvalidArgument.single("border", f"must be 0 to {MAX_BORDER} modules, found {border!r}")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=MAX_SCALE)
def _pixel_bytes_by_module_byte(scale: int) -> tuple[bytes, ...]:
    """For each byte of 8 modules (bit set = dark), its ``8 * scale`` pixels packed as ``scale`` bytes."""
    # In 1-bit grayscale a 0 bit is black: a dark module becomes ``scale`` zero bits, a light one ``scale`` ones.
    module_to_pixels = str.maketrans({"1": "0" * scale, "0": "1" * scale})
    return tuple(
        int(format(modules, "08b").translate(module_to_pixels), 2).to_bytes(scale, "big") for modules in range(256)
    )


def png_from_modules(modules: QrModules, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER) -> bytes:
    """1-bit grayscale PNG of ``modules``: ``scale`` pixels per module, ``border`` light modules around."""
    _check_geometry(scale, border)
    side_modules = modules.size + 2 * border
    side_pixels = side_modules * scale
    row_bytes = -(-side_pixels // 8)
    module_bytes = -(-side_modules // 8)
    right_padding = module_bytes * 8 - side_modules  # light modules past the edge, cut off with their pixels
    pixel_bytes = _pixel_bytes_by_module_byte(scale)
    quiet_rows = (_PNG_FILTER_NONE + b"\xff" * row_bytes) * (border * scale)
    lines = [quiet_rows]
    for row in modules.rows:
        module_row = (row << (border + right_padding)).to_bytes(module_bytes, "big")
        pixels = b"".join([pixel_bytes[eight_modules] for eight_modules in module_row])[:row_bytes]
        lines.append((_PNG_FILTER_NONE + pixels) * scale)
    lines.append(quiet_rows)
    header = struct.pack(">IIBBBBB", side_pixels, side_pixels, *_PNG_GRAYSCALE_1_BIT)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"".join(lines), _ZLIB_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def render_png(payload: str, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER) -> bytes:
    """PNG image of the QR code of ``payload`` (error correction M)."""
    _check_geometry(scale, border)
    return png_from_modules(qr_modules(payload), scale=scale, border=border)


def svg_from_modules(modules: QrModules, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER) -> str:
    """SVG of ``modules``: one path of dark runs in module units, drawn ``scale`` pixels per module."""
    _check_geometry(scale, border)
    side_modules = modules.size + 2 * border
    side_pixels = side_modules * scale
    runs = []
    for row_index in range(modules.size):
        for run in _DARK_RUN.finditer(modules.row_text(row_index)):
            length = run.end() - run.start()
            runs.append(f"M{run.start() + border} {row_index + border}h{length}v1h-{length}z")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side_pixels}" height="{side_pixels}" '
        f'viewBox="0 0 {side_modules} {side_modules}" shape-rendering="crispEdges">'
        f'<rect width="{side_modules}" height="{side_modules}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>\n'
    )


def render_svg(payload: str, *, scale: int = DEFAULT_SCALE, border: int = DEFAULT_BORDER) -> str:
    """SVG image of the QR code of ``payload`` (error correction M)."""
    _check_geometry(scale, border)
    return svg_from_modules(qr_modules(payload), scale=scale, border=border)
