"""The land: mountains with snow caps, hills, ground bands on a perspective plane, roads and paths, rocks."""
from __future__ import annotations

import numpy as np

from spadekit.landscapes.canvas import ID, Scene
from spadekit.landscapes.noise import fbm, fbm1d, luminance, smoothstep

PEBBLES = ("TP2", "ET11", "ET12", "SI_gravel", "PW1")  # pebble / gravel crops: ground, not boulders


def mountains(scene: Scene, count: int, snow: float) -> None:
    rng, c = scene.rng, scene.c
    for i in range(count):
        far = i < count - 1 or count == 1 and rng.random() < 0.4
        top = scene.horizon - rng.uniform(0.15, 0.65 if not far else 0.4) * scene.horizon
        cells = rng.uniform(1.0, 3.0)
        ridge = fbm1d(rng, scene.w, cells=cells, octaves=6, ridged=rng.random() < 0.7)
        ridge = (ridge - ridge.min()) / max(ridge.max() - ridge.min(), 1e-6)
        ridge = ridge ** rng.uniform(1.0, 1.8)
        base = scene.horizon - rng.uniform(0.0, 0.06) * scene.h
        y_ridge = base - ridge * (base - top)
        hard = c.yy >= y_ridge[None, :]
        tex = scene.pick("mountain", "rock") if rng.random() < 0.65 else scene.pick("rock")
        col = scene.flat_fill(tex, rng.uniform(0.8, 1.6) / scene.px)
        col = scene.jitter(col, 0.12)
        if scene.kind == "desert":
            col = col * np.array([1.15, 0.92, 0.7], dtype=np.float32)
        # lit faces from the ridge slope + a rough 2D heightfield
        hf = fbm(rng, scene.h, scene.w, cells=rng.uniform(4, 9), octaves=4)
        gx = np.gradient(hf, axis=1) * scene.w / 8
        light = rng.choice([-1.0, 1.0])
        slope = np.gradient(y_ridge)[None, :] * -light
        shade = np.clip(0.8 + light * gx * 0.6 + np.clip(slope, -1, 1) * 0.15, 0.4, 1.35)
        depth = np.clip((c.yy - y_ridge[None, :]) / max(scene.horizon - top, 1), 0, 1)
        col = col * shade[..., None] * (1 - 0.25 * depth[..., None])
        # snow cap above a noisy snowline, more on lit faces
        snow_hard = np.zeros_like(hard)
        if snow > 0 and rng.random() < snow:
            line = top + (scene.horizon - top) * rng.uniform(0.25, 0.6)
            jag = fbm(rng, scene.h, scene.w, cells=rng.uniform(6, 14), octaves=4)
            thresh = line + (jag - 0.5) * (scene.horizon - top) * 0.7 + gx * light * 8 * scene.px
            snow_hard = hard & (c.yy < thresh)
            stex = scene.pick("snow")
            scol = scene.flat_fill(stex, rng.uniform(0.5, 1.2) / scene.px)
            scol = scol * np.clip(shade[..., None] * 1.1, 0.55, 1.15) * np.array([0.97, 0.99, 1.03])
            col = np.where(snow_hard[..., None], scol, col)
        haze = rng.uniform(0.3, 0.65) if far else rng.uniform(0.0, 0.25)
        col = col * (1 - haze) + scene.horizon_colour * haze
        c.paint(hard, np.clip(col, 0, 1), "mountain", feather=0.6 * scene.px)
        if snow_hard.any():
            c.label[snow_hard] = ID["snow"]


def hills(scene: Scene, count: int) -> None:
    rng, c = scene.rng, scene.c
    for i in range(count):
        height = rng.uniform(0.03, 0.14) * scene.h
        ridge = fbm1d(rng, scene.w, cells=rng.uniform(0.6, 1.8), octaves=3)
        ridge = (ridge - ridge.min()) / max(ridge.max() - ridge.min(), 1e-6)
        base = scene.horizon + 1
        y_ridge = base - height * (0.35 + 0.65 * ridge)
        hard = c.yy >= y_ridge[None, :]
        mat = "tree" if rng.random() < 0.35 else ("grass" if scene.kind != "desert" else "sand")
        if scene.kind == "winter":
            mat = "snow"
        tex = scene.pick(mat)
        col = scene.flat_fill(tex, rng.uniform(1.5, 3.0) / scene.px)
        col = scene.jitter(col, 0.1) * (0.75 if mat == "tree" else 0.9)
        light = rng.choice([-1.0, 1.0])
        slope = np.gradient(y_ridge)[None, :] * -light / scene.px
        shade = np.clip(0.92 + slope * 0.5, 0.6, 1.2)[..., None] * scene.shade_noise(3, 0.15)
        col = col * shade
        haze = rng.uniform(0.15, 0.45) * (1 - i / max(count, 1))
        col = col * (1 - haze) + scene.horizon_colour * haze
        c.paint(hard, np.clip(col, 0, 1), "hill", feather=0.7 * scene.px)


def ground(scene: Scene, material: str, name: str, y_top: np.ndarray | float, y_bottom: np.ndarray | float | None = None,
           darken: float = 1.0) -> np.ndarray:
    rng, c = scene.rng, scene.c
    y_top = np.broadcast_to(np.asarray(y_top, dtype=np.float32), (scene.w,))[None, :]
    hard = c.yy >= y_top
    if y_bottom is not None:
        hard &= c.yy < np.broadcast_to(np.asarray(y_bottom, dtype=np.float32), (scene.w,))[None, :]
    tex = scene.pick(material)
    col = scene.ground_fill(tex, scene.horizon)
    # a second sampling (same or other texture of the material, other scale) in patches breaks tiling
    tex2 = scene.pick(material) if rng.random() < 0.6 else tex
    col2 = scene.ground_fill(tex2, scene.horizon, rng.uniform(0.3, 0.8))
    col2 = col2 * (tex.mean / np.maximum(tex2.mean, 0.02)) ** 0.5
    m = fbm(rng, scene.h, scene.w, cells=3, octaves=3, aspect=3)
    m = smoothstep(0.4, 0.6, m)[..., None]
    col = col * (1 - m) + col2 * m
    col = scene.jitter(col, 0.1) * darken * scene.shade_noise(2.5, 0.18, aspect=3)
    if scene.mood == "sunset":
        col = col * np.array([1.05, 0.9, 0.75], dtype=np.float32) * 0.85
    elif scene.mood == "overcast":
        col = col * 0.85
    col = scene.haze(col, scene.horizon, rng.uniform(0.3, 0.7))
    c.paint(hard, np.clip(col, 0, 1), name, feather=0.8 * scene.px)
    return hard


def boundary(scene: Scene, frac: float, wave: float, cells: float = 2.0) -> np.ndarray:
    """A ground band boundary at `frac` of the way from the horizon to the bottom, wavy in perspective."""
    d = (scene.h - scene.horizon) * frac
    y = scene.horizon + d + fbm1d(scene.rng, scene.w, cells=cells, octaves=4) * wave * d
    return np.clip(y, scene.horizon + 1, scene.h + 2).astype(np.float32)


def strip(scene: Scene, name: str, material: str, width: float, wiggle: float, within: np.ndarray | None = None,
          colour_fn=None) -> np.ndarray:
    """A band on the ground plane (road, path, river): widens towards the viewer."""
    rng, c = scene.rng, scene.c
    d = np.maximum(c.yy - scene.horizon, 0.6)
    depth = (scene.h - scene.horizon) / d          # 1 at the bottom row, grows with distance
    x0 = scene.w * rng.uniform(0.2, 0.8)
    x_vanish = scene.w * rng.uniform(0.25, 0.75)
    phase, freq = rng.uniform(0, 6.3), rng.uniform(0.3, 1.2)
    centre = x_vanish + (x0 - x_vanish) / depth + wiggle * scene.w * np.sin(freq * np.log(depth) + phase) / depth ** 0.5
    half = width * scene.w / 2 / depth
    hard = (np.abs(c.xx - centre) < half) & (c.yy > scene.horizon + 1)
    if within is not None:
        hard &= within
    if not hard.any():
        return hard
    if colour_fn is not None:
        col = colour_fn()
    else:
        col = scene.ground_fill(scene.pick(material), scene.horizon)
    if name == "road" and scene.road_marks:
        # dashed centre line and edge lines, on the ground plane
        off = np.abs(c.xx - centre) / np.maximum(half, 1e-3)
        _, v, _, _ = scene.ground_uv(scene.horizon, 0.05, 1.0)
        dash = ((v[:, None] * rng.uniform(0.8, 1.6)) % 1.0) < 0.5
        line = ((off < 0.04) & dash) | ((off > 0.86) & (off < 0.92))
        col = np.where(line[..., None], np.array([0.85, 0.85, 0.8], np.float32), col)
    col = scene.haze(scene.jitter(col, 0.1), scene.horizon, 0.5)
    c.paint(hard, np.clip(col, 0, 1), name, feather=0.7 * scene.px)
    return hard


def asphalt(scene: Scene) -> np.ndarray:
    rng = scene.rng
    g = rng.uniform(0.25, 0.42)
    n = fbm(rng, scene.h, scene.w, cells=40, octaves=2)
    col = np.full((scene.h, scene.w, 3), g, dtype=np.float32) * (0.85 + 0.3 * n)[..., None]
    if "road" in scene.tex and rng.random() < 0.5:
        col = col * 0.5 + scene.ground_fill(scene.pick("road"), scene.horizon) * 0.5
    scene.road_marks = rng.random() < 0.6
    return col


def rocks(scene: Scene, count: int, on: np.ndarray, big: bool = False) -> None:
    rng = scene.rng
    ys, xs = np.nonzero(on)
    if len(ys) == 0:
        return
    pick = rng.integers(len(ys), size=count)
    tex = scene.pick("rock", exclude=PEBBLES)
    fill = scene.jitter(scene.flat_fill(tex, rng.uniform(0.5, 1.2) / scene.px), 0.15)
    grey = luminance(fill)[..., None]
    fill = grey + (fill - grey) * 0.6  # boulders: less saturated than the close-up crops
    if scene.kind == "desert":
        fill = fill * np.array([1.1, 0.9, 0.7], dtype=np.float32)
    lx = rng.choice([-1.0, 1.0])
    for by, bx in sorted(zip(ys[pick].tolist(), xs[pick].tolist())):
        d = (by - scene.horizon) / max(scene.h - scene.horizon, 1)
        if d < 0.04:
            continue
        r = (rng.uniform(0.03, 0.12 if not big else 0.3) * scene.h) * d + 1.5 * scene.px
        ry = r * rng.uniform(0.5, 0.9)
        res = scene.blob(bx, by - ry * 0.4, r, ry, rough=rng.uniform(0.1, 0.3), flat_bottom=True)
        if res is None:
            continue
        m, y0, x0 = res
        yy = np.arange(y0, y0 + m.shape[0], dtype=np.float32)[:, None]
        xx = np.arange(x0, x0 + m.shape[1], dtype=np.float32)[None, :]
        local = 1.05 - 0.6 * np.clip((yy - (by - 1.4 * ry)) / (1.6 * ry), 0, 1) ** 0.8 + 0.2 * lx * np.clip((xx - bx) / r, -1, 1)
        # contact shadow on the ground around the foot of the rock (image only)
        sy0, sy1 = int(max(0, by - ry * 0.3)), int(min(scene.h, by + ry * 0.25 + 1))
        sx0, sx1 = int(max(0, bx - r * 1.3)), int(min(scene.w, bx + r * 1.3 + 1))
        if sy1 > sy0 and sx1 > sx0:
            syy = np.arange(sy0, sy1, dtype=np.float32)[:, None]
            sxx = np.arange(sx0, sx1, dtype=np.float32)[None, :]
            sh = np.clip(1 - np.hypot((sxx - bx) / (r * 1.3), (syy - by) / (ry * 0.3 + 1)), 0, 1)
            scene.c.img[sy0:sy1, sx0:sx1] *= (1 - 0.45 * sh)[..., None]
        shade = np.ones((scene.h, scene.w), np.float32)
        shade[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] = local
        scene.paint_local(m, y0, x0, np.clip(fill * shade[..., None], 0, 1), "rock", feather=0.5 * scene.px)
