"""QR images: PNG and SVG decode back to the payload, match qrcode's own matrix and are well-formed files."""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ElementTree
import zlib

import pytest
import qrcode
import zxingcpp
from PIL import Image, ImageDraw

from payment_service.adapters.qr_png import (
    png_from_modules,
    qr_modules,
    render_png,
    render_svg,
)
from payment_service.domain.vietqr import Service, VietQr, build_payload, payment_qr
from servicekit.errors import InvalidArgument

LONGEST_VIETQR = build_payload(
    VietQr(
        bank_bin="970436",
        account="A" * 9 + "9" * 10,
        service=Service.TO_ACCOUNT,
        dynamic=True,
        amount=10**13 - 1,
        merchant_category="9399",
        merchant_name="N" * 25,
        merchant_city="C" * 15,
        bill_number="B" * 25,
        reference_label="R" * 25,
        terminal="T" * 25,
        purpose="P" * 8,
    )
)
PAYLOADS = [
    "00020101021138600010A00000072701300006970403011697040311012345670208QRIBFTTC53037045802VN63044F52",
    "00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA530370454061800005802VN"
    "62340107NPS68690819thanh toan don hang63042E2E",
    payment_qr("970415", "113366668888", 350000, "DVC7Q2K9", "Lệ phí cấp bản sao trích lục hộ tịch"),
    payment_qr("970418", "9" * 19, 10**13 - 1, "R" * 25, "x" * 60),
    LONGEST_VIETQR,
    "Lệ phí: đ",  # non-ASCII bytes take qrcode's byte mode
]
# Far beyond any VietQR payload: about 2,000 bytes is near the capacity of the largest QR version at level M.
LONGEST_QR = "".join(f"{index:04d}-DVC-payment;" for index in range(125))


def reference_matrix(payload: str, border: int = 0) -> list[list[bool]]:
    """The matrix qrcode itself produces with its own mask choice: the oracle for ours."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    code.add_data(payload)
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.get_matrix()]


def decode(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image)]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split a PNG into (type, data) chunks, checking each chunk's CRC32 on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks = []
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (stored_crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert stored_crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        position += 12 + length
    assert position == len(data)
    return chunks


def test_longest_vietqr_is_really_at_the_field_limits() -> None:
    assert len(LONGEST_VIETQR) > 250
    assert len(LONGEST_QR.encode()) > 1900


@pytest.mark.parametrize("payload", [*PAYLOADS, LONGEST_QR])
def test_png_decodes_back_to_the_payload_and_has_the_expected_size(payload: str) -> None:
    png = render_png(payload)
    image = Image.open(io.BytesIO(png))
    image.load()
    modules = len(reference_matrix(payload))
    assert image.format == "PNG"
    assert image.size == (8 * (modules + 2 * 4),) * 2
    assert decode(image) == [payload]


@pytest.mark.parametrize(("scale", "border"), [(2, 4), (3, 1), (5, 4), (8, 0), (11, 6)])
def test_scale_and_border_are_configurable(scale: int, border: int) -> None:
    payload = PAYLOADS[2]
    image = Image.open(io.BytesIO(render_png(payload, scale=scale, border=border)))
    modules = len(reference_matrix(payload))
    assert image.size == (scale * (modules + 2 * border),) * 2
    if border:  # zxing needs some quiet zone
        assert decode(image) == [payload]


@pytest.mark.parametrize(("scale", "border"), [(1, 0), (3, 2), (7, 4), (9, 3)])
def test_every_png_pixel_matches_qrcodes_matrix(scale: int, border: int) -> None:
    payload = PAYLOADS[1]
    expected = reference_matrix(payload, border=border)
    image = Image.open(io.BytesIO(render_png(payload, scale=scale, border=border))).convert("L")
    width, height = image.size
    pixels = image.tobytes()
    for y in range(height):
        for x in range(width):
            dark = expected[y // scale][x // scale]
            assert pixels[y * width + x] == (0 if dark else 255), (x, y)


def test_png_is_a_well_formed_one_bit_grayscale_file() -> None:
    chunks = png_chunks(render_png(PAYLOADS[0], scale=4, border=4))
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    modules = len(reference_matrix(PAYLOADS[0]))
    assert (width, height) == (4 * (modules + 8),) * 2
    assert (depth, colour, compression, filtering, interlace) == (1, 0, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + (width + 7) // 8)  # one filter byte per row


@pytest.mark.parametrize("payload", [*PAYLOADS, LONGEST_QR, "1", "A" * 300, "0123456789" * 70])
def test_module_matrix_is_identical_to_qrcodes_including_its_mask_choice(payload: str) -> None:
    modules = qr_modules(payload)
    expected = reference_matrix(payload)
    assert modules.size == len(expected)
    assert [[modules.is_dark(row, column) for column in range(modules.size)] for row in range(modules.size)] == expected


def test_module_matrix_matches_qrcode_over_many_payment_codes() -> None:
    for counter in range(60):
        payload = payment_qr("970436", f"{counter:013d}", 1000 * (counter + 1), f"DVC{counter:05d}", "le phi")
        modules = qr_modules(payload)
        rows = [[modules.is_dark(r, c) for c in range(modules.size)] for r in range(modules.size)]
        assert rows == reference_matrix(payload), payload


def svg_dark_modules(svg: str) -> tuple[int, set[tuple[int, int]], int]:
    """(side in modules, dark (row, column) cells, side in pixels) read back from the SVG's path."""
    root = ElementTree.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{namespace}svg"
    _, _, side, side_again = (int(number) for number in root.attrib["viewBox"].split())
    assert side == side_again
    assert root.attrib["width"] == root.attrib["height"]
    path = root.find(f"{namespace}path")
    assert path is not None
    dark: set[tuple[int, int]] = set()
    for x, y, length, back in re.findall(r"M(\d+) (\d+)h(\d+)v1h-(\d+)z", path.attrib["d"]):
        assert length == back
        dark.update((int(y), int(x) + step) for step in range(int(length)))
    return side, dark, int(root.attrib["width"])


@pytest.mark.parametrize("payload", [PAYLOADS[1], LONGEST_VIETQR])
def test_svg_draws_exactly_qrcodes_dark_modules_and_decodes(payload: str) -> None:
    border = 4
    side, dark, width = svg_dark_modules(render_svg(payload, scale=6, border=border))
    expected = reference_matrix(payload, border=border)
    assert side == len(expected)
    assert width == 6 * side
    assert dark == {(r, c) for r, row in enumerate(expected) for c, is_dark in enumerate(row) if is_dark}
    # Rasterise the SVG's rectangles to prove the drawing, not just the matrix, scans.
    image = Image.new("L", (width, width), 255)
    draw = ImageDraw.Draw(image)
    for row, column in dark:
        draw.rectangle((column * 6, row * 6, column * 6 + 5, row * 6 + 5), fill=0)
    assert decode(image) == [payload]


def test_png_from_modules_and_render_png_agree() -> None:
    assert png_from_modules(qr_modules(PAYLOADS[2]), scale=5) == render_png(PAYLOADS[2], scale=5)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"scale": 0}, "scale"),
        ({"scale": 41}, "scale"),
        ({"scale": 2.5}, "scale"),
        ({"scale": True}, "scale"),
        ({"border": -1}, "border"),
        ({"border": 17}, "border"),
    ],
)
def test_bad_geometry_is_rejected(arguments: dict[str, object], field: str) -> None:
    for render in (render_png, render_svg):
        with pytest.raises(InvalidArgument) as caught:
            render(PAYLOADS[0], **arguments)  # type: ignore[arg-type]
        assert [v.field for v in caught.value.violations] == [field]


@pytest.mark.parametrize("payload", ["", "x" * 3000])
def test_empty_or_oversized_payloads_are_rejected(payload: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        render_png(payload)
    assert [v.field for v in caught.value.violations] == ["payload"]


def test_data_qrcode_cannot_encode_is_an_invalid_argument_not_a_crash() -> None:
    # qrcode 8.2 fails inside Reed-Solomon on an all-zero data block; whatever it does, no bare exception escapes.
    payload = "0" * 700
    try:
        png = render_png(payload)
    except InvalidArgument as error:
        assert [v.field for v in error.violations] == ["payload"]
    else:
        assert decode(Image.open(io.BytesIO(png))) == [payload]
