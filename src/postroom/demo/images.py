"""Image work with Pillow: thumbnails, watermarks, and the demo's generated uploads.

Pure functions over bytes, no queue and no I/O, so they are tested on their own.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, UnidentifiedImageError

__all__ = [
    "UndecodableImage",
    "corrupt_image",
    "generate_image",
    "make_thumbnails",
    "make_watermark",
]

_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class UndecodableImage(Exception):
    """The bytes are not an image Pillow can decode: no retry will change that."""


def _open(data: bytes, mode: str, what: str) -> Image.Image:
    """``data`` decoded and converted to ``mode``; ``what`` names it in the error."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except _DECODE_ERRORS as exc:
        raise UndecodableImage(f"{what} ({exc})") from exc
    return image.convert(mode)


def _apply_watermark(image: Image.Image, mark: Image.Image) -> Image.Image:
    width = max(8, image.width // 4)
    scaled = mark.resize((width, max(1, mark.height * width // mark.width)))
    out = image.copy()
    where = (out.width - scaled.width - 2, out.height - scaled.height - 2)
    out.paste(scaled, where, scaled if scaled.mode == "RGBA" else None)
    return out


def make_thumbnails(
    data: bytes, sizes: list[int], watermark: bytes | None = None
) -> dict[int, bytes]:
    """JPEG thumbnails of ``data`` that fit in ``size`` x ``size``, by size.

    With ``watermark`` (PNG bytes) each thumbnail gets it in a corner. Raises
    :class:`UndecodableImage` when ``data`` is not an image.
    """
    image = _open(data, "RGB", "not a decodable image")
    mark = None
    if watermark is not None:
        mark = _open(watermark, "RGBA", "the watermark is not an image")
    out: dict[int, bytes] = {}
    for size in sorted(set(sizes), reverse=True):
        thumb = image.copy()
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
        if mark is not None:
            thumb = _apply_watermark(thumb, mark)
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=85)
        out[size] = buf.getvalue()
    return out


def make_watermark(text: str = "postroom") -> bytes:
    """A small translucent PNG watermark with ``text``."""
    mark = Image.new("RGBA", (96, 24), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    draw.rounded_rectangle((0, 0, 95, 23), radius=6, fill=(0, 0, 0, 110))
    draw.text((8, 6), text, fill=(255, 255, 255, 220))
    buf = io.BytesIO()
    mark.save(buf, "PNG")
    return buf.getvalue()


def generate_image(seed: int, size: tuple[int, int] = (480, 360)) -> bytes:
    """A JPEG picture (gradient and shapes) that differs by ``seed``."""
    rng = random.Random(seed)
    width, height = size
    base = tuple(rng.randrange(40, 200) for _ in range(3))
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    tint = Image.new("RGB", size, base)
    image = Image.blend(image, tint, 0.6)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(10, height // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    draw.text((10, 10), f"#{seed}", fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def corrupt_image(seed: int) -> bytes:
    """Bytes that start like a JPEG but are not one (a truncated, garbled upload)."""
    rng = random.Random(seed)
    return b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(2048))
