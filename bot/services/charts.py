"""Bar charts as PNG, drawn with Pillow: what the weekly digest and `/stats` attach.

A chart is a few rectangles, lines and labels; drawing them directly costs a few
milliseconds where matplotlib spent ~0.1–0.3 s laying out artists, ticks and texts (183
territories × 3 charts every Monday). The pictures keep what matplotlib drew: 800 × 450
pixels, the title on top, bars in the same colour with their values written at their ends,
the axis with French decimal ticks (whole numbers for counts), a light grid, the axis
label. The font is the DejaVu Sans shipped with matplotlib (the same letters as before).

Every function is pure and thread-safe: each thread keeps its own fonts (a FreeType face
is not shared between threads).
"""

from __future__ import annotations

import importlib.util
import io
import math
import threading
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["HEIGHT", "WIDTH", "barh_png", "bars_png", "nice_ticks"]

WIDTH, HEIGHT = 800, 450
BAR = (0x2A, 0x6F, 0x97)
# The picture is drawn in grey levels (text, lines, grid), then made a palette image whose
# level 1 is the bars' blue: a third of the bytes of RGB to compress, most of the cost.
INK = 0
BAR_INDEX = 1
# matplotlib's grid (#b0b0b0 at 30 % opacity) over white.
GRID = 0xEF
WHITE = 255
_PALETTE = [v for level in range(256) for v in ((level,) * 3 if level != BAR_INDEX else BAR)]
# Antialiased text may use level 1: drawn as black instead (invisible), it frees the index.
_FREE_BAR = [INK if level == BAR_INDEX else level for level in range(256)]
# Sizes in pixels at 100 dpi: 10 pt labels, 11 pt title, 3.5 pt ticks and paddings.
LABEL_PX = 14
TITLE_PX = 15
TICK = 5
PAD = 5
VALUE_PAD = 5
# Plot area margins (pixels), as the matplotlib layout set them.
RIGHT, TOP, BOTTOM = 12, 36, 48

Formatter = Callable[[float], str]


@cache
def _font_path() -> str:
    """DejaVu Sans from matplotlib's data (installed with the bot), found without importing
    matplotlib (and numpy): a chart needs only the file."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib's fonts are missing: install the bot's dependencies")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return str(folder / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")


_FONTS = threading.local()


def _font(size: int) -> ImageFont.FreeTypeFont:
    """This thread's font of `size` pixels."""
    fonts: dict[int, ImageFont.FreeTypeFont] | None = getattr(_FONTS, "fonts", None)
    if fonts is None:
        fonts = _FONTS.fonts = {}
    if size not in fonts:
        fonts[size] = ImageFont.truetype(_font_path(), size)
    return fonts[size]


def _width(text: str, size: int = LABEL_PX) -> float:
    return _font(size).getlength(text)


def nice_ticks(top: float, *, integer: bool, most: int) -> list[float]:
    """Ticks from 0 to `top` every 1, 2, 2.5 or 5 × 10^k, at most `most` intervals
    (whole-number steps only when `integer`), as matplotlib's `MaxNLocator` picks them."""
    if top <= 0:
        return [0.0]
    raw = top / most
    scale = 10.0 ** math.floor(math.log10(raw))
    candidates = [s * scale for s in (1, 2, 2.5, 5, 10)]
    if integer:
        # Counts: no tick between two whole numbers.
        candidates = [c for c in candidates if c >= 1 and float(c).is_integer()] or [1.0]
    step = next((c for c in candidates if c >= raw * (1 - 1e-9)), candidates[-1])
    count = math.floor(top / step + 1e-9)
    return [i * step for i in range(count + 1)]


def _decimal(value: float) -> str:
    """French decimal tick: one decimal at most, a comma, no ",0" tail."""
    text = f"{Decimal(str(value)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", ",")


Box = tuple[int, int, int, int]


def _canvas(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (WIDTH, HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((WIDTH / 2, 8), title, font=_font(TITLE_PX), fill=INK, anchor="mt")
    return image, draw


def _png(image: Image.Image, bars: list[Box]) -> bytes:
    """The grey picture with its bars in blue, as PNG bytes."""
    picture = image.point(_FREE_BAR).convert("P")
    picture.putpalette(_PALETTE)
    draw = ImageDraw.Draw(picture)
    for box in bars:
        draw.rectangle(box, fill=BAR_INDEX)
    buffer = io.BytesIO()
    # Pillow writes no "Software" chunk: the bytes depend on the picture only.
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def barh_png(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
             value_text: Formatter, integer: bool) -> bytes:
    """Horizontal bars, first item on top, each value written at its bar's end."""
    image, draw = _canvas(title)
    bars: list[Box] = []
    font = _font(LABEL_PX)
    widest = max((_width(text) for text in labels), default=0.0)
    left = round(min(widest + 14, 0.6 * WIDTH))
    right, top, bottom = WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    high = max(max(values, default=0.0), 1) * 1.15  # room for the value labels

    def x_of(value: float) -> float:
        return left + (right - left) * value / high

    ticks = nice_ticks(high, integer=integer, most=max(1, (right - left) // 90))
    for tick in ticks:
        x = round(x_of(tick))
        draw.line([(x, top), (x, bottom)], fill=GRID, width=1)
        draw.line([(x, bottom), (x, bottom + TICK)], fill=INK, width=1)
        draw.text((x, bottom + TICK + PAD), _decimal(tick), font=font, fill=INK, anchor="mt")
    # Slots of equal height, the bars 0.6 of a slot, 5 % of the span around them.
    count = max(len(values), 1)
    span = count - 1 + 0.6
    low_y, high_y = -0.3 - 0.05 * span, count - 0.7 + 0.05 * span

    def y_of(position: float) -> float:
        return top + (bottom - top) * (position - low_y) / (high_y - low_y)

    for index, (text, value) in enumerate(zip(labels, values, strict=True)):
        y0, y1, middle = y_of(index - 0.3), y_of(index + 0.3), y_of(index)
        end = x_of(value)
        if value > 0:
            bars.append((left + 1, round(y0), round(end), round(y1)))
        draw.line([(left - TICK, round(middle)), (left, round(middle))], fill=INK, width=1)
        draw.text((left - TICK - PAD, middle), text, font=font, fill=INK, anchor="rm")
        draw.text((end + VALUE_PAD, middle), value_text(value), font=font, fill=INK,
                  anchor="lm")
    draw.line([(left, top), (left, bottom)], fill=INK, width=1)
    draw.line([(left, bottom), (right, bottom)], fill=INK, width=1)
    draw.text(((left + right) / 2, HEIGHT - 6), xlabel, font=font, fill=INK, anchor="md")
    return _png(image, bars)


def bars_png(counts: Sequence[tuple[str, int]], *, title: str, xlabel: str,
             ylabel: str) -> bytes:
    """Vertical bars of counts (the ratings 1 to 5), each count written above its bar."""
    image, draw = _canvas(title)
    bars: list[Box] = []
    font = _font(LABEL_PX)
    high = max(max((c for _, c in counts), default=0), 1) * 1.15
    ticks = nice_ticks(high, integer=True, most=6)
    widest = max(_width(_decimal(tick)) for tick in ticks)
    left = round(widest + 14 + 22)
    right, top, bottom = WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * value / high

    for tick in ticks:
        y = round(y_of(tick))
        draw.line([(left, y), (right, y)], fill=GRID, width=1)
        draw.line([(left - TICK, y), (left, y)], fill=INK, width=1)
        draw.text((left - TICK - PAD, y), _decimal(tick), font=font, fill=INK, anchor="rm")
    count = max(len(counts), 1)
    span = count - 1 + 0.6
    low_x, high_x = -0.3 - 0.05 * span, count - 0.7 + 0.05 * span

    def x_of(position: float) -> float:
        return left + (right - left) * (position - low_x) / (high_x - low_x)

    for index, (name, value) in enumerate(counts):
        x0, x1, middle = x_of(index - 0.3), x_of(index + 0.3), x_of(index)
        if value > 0:
            bars.append((round(x0), round(y_of(value)), round(x1), bottom - 1))
            draw.text((middle, y_of(value) - VALUE_PAD), str(value), font=font, fill=INK,
                      anchor="md")
        draw.line([(round(middle), bottom), (round(middle), bottom + TICK)], fill=INK,
                  width=1)
        draw.text((middle, bottom + TICK + PAD), name, font=font, fill=INK, anchor="mt")
    draw.line([(left, top), (left, bottom)], fill=INK, width=1)
    draw.line([(left, bottom), (right, bottom)], fill=INK, width=1)
    draw.text(((left + right) / 2, HEIGHT - 6), xlabel, font=font, fill=INK, anchor="md")
    # The y label, turned a quarter to the left, centred on the axis.
    box = font.getbbox(ylabel, anchor="lt")
    label = Image.new("L", (int(box[2]) + 2, int(box[3]) + 2), WHITE)
    ImageDraw.Draw(label).text((1, 1), ylabel, font=font, fill=INK, anchor="lt")
    turned = label.rotate(90, expand=True)
    image.paste(turned, (6, round((top + bottom - turned.height) / 2)))
    return _png(image, bars)
