"""The scaling plot of the benchmark suite: seconds per image against pixels, baseline and fast path.

    python benchmarks/suite.py --suite scaling --plot docs/images/perf_scaling.png
"""
from __future__ import annotations

from PIL import Image, ImageDraw

from spadekit.imageio import save_image


def plot_scaling(rows: list[dict], path) -> str:
    """Seconds per image against pixels for both paths (PIL; dotted: proportional to pixels through the
    smallest size), written atomically as a PNG."""
    rows = [r for r in rows if "speedup" in r]
    if not rows:
        raise ValueError("no measured rows to plot")
    width, height, left, bottom, top, right = 720, 480, 80, 60, 30, 170
    pixels = [r["size"] ** 2 for r in rows]
    series = {"baseline (fp32 eager)": ([r["baseline_s"] for r in rows], (200, 60, 60)),
              "fast": ([r["fast_s"] for r in rows], (40, 110, 200))}
    xmax = max(pixels) * 1.05
    ymax = max(max(v) for v, _ in series.values()) * 1.1

    def xy(px, sec):
        return (left + px / xmax * (width - left - right), height - bottom - sec / ymax * (height - bottom - top))

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.line([xy(0, 0), xy(xmax, 0)], fill="black")
    draw.line([xy(0, 0), xy(0, ymax)], fill="black")
    for r, px in zip(rows, pixels):
        x, y = xy(px, 0)
        draw.line([(x, y), (x, y + 5)], fill="black")
        draw.text((x - 18, y + 8), f"{r['size']}^2", fill="black")
    for i in range(5):
        sec = ymax * i / 5
        x, y = xy(0, sec)
        draw.line([(x - 5, y), (x, y)], fill="black")
        draw.text((8, y - 6), f"{sec:.2f} s", fill="black")
    draw.text((width // 2 - 90, height - 25), "pixels per image (side^2)", fill="black")
    for n, (name, (values, color)) in enumerate(series.items()):
        points = [xy(px, v) for px, v in zip(pixels, values)]
        draw.line(points, fill=color, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
        per_pixel = values[0] / pixels[0]
        ideal = [xy(px, per_pixel * px) for px in (pixels[0], max(pixels))]
        for k in range(0, 40, 2):  # dotted proportional line
            a, b = k / 40, (k + 1) / 40
            draw.line([(ideal[0][0] + a * (ideal[1][0] - ideal[0][0]), ideal[0][1] + a * (ideal[1][1] - ideal[0][1])),
                       (ideal[0][0] + b * (ideal[1][0] - ideal[0][0]), ideal[0][1] + b * (ideal[1][1] - ideal[0][1]))], fill=color)
        draw.rectangle([width - right + 10, top + 20 * n, width - right + 24, top + 20 * n + 12], fill=color)
        draw.text((width - right + 30, top + 20 * n), name, fill="black")
    draw.text((width - right + 10, top + 50), "dotted: time ~ pixels", fill="black")
    draw.text((left, 8), "SPADE inference on 2 CPU cores: seconds per image", fill="black")
    return str(save_image(path, image))
