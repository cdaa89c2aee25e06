"""Pictures people would rather see than read: colourised label maps and contact sheets."""
from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from spadekit.imageio import colorize

__all__ = ["colorize", "contact_sheet"]


def contact_sheet(rows: Sequence[Sequence[Image.Image]], tile: int = 192, gap: int = 4, titles: Sequence[str] | None = None) -> Image.Image:
    """Grid of images, one row per sequence, each tile resized to `tile` px high; optional row titles."""
    title_h = 14 if titles else 0
    widths = [sum(int(im.width * tile / im.height) for im in row) + gap * (len(row) - 1) for row in rows]
    sheet = Image.new("RGB", (max(widths) + 2 * gap, len(rows) * (tile + gap + title_h) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = gap
    for r, row in enumerate(rows):
        if titles:
            draw.text((gap, y), titles[r], fill=(0, 0, 0))
            y += title_h
        x = gap
        for im in row:
            w = int(im.width * tile / im.height)
            resample = Image.NEAREST if im.mode == "P" else Image.BICUBIC
            sheet.paste(im.convert("RGB").resize((w, tile), resample), (x, y))
            x += w + gap
        y += tile + gap
    return sheet
