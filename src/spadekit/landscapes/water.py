"""Water: sea and lakes that mirror what stands above the horizon, and the colour of rivers."""
from __future__ import annotations

import numpy as np

from spadekit.landscapes.canvas import Scene
from spadekit.landscapes.noise import fbm, luminance


def surface(scene: Scene, name: str, y0, y1: np.ndarray, calm: float) -> np.ndarray:
    """Water from y0 (the horizon, or a far shore per column) down to the boundary y1 (per column);
    reflects what is above the horizon."""
    rng, c = scene.rng, scene.c
    y0 = np.broadcast_to(np.asarray(y0, dtype=np.float32), (scene.w,))[None, :]
    hard = (c.yy >= y0) & (c.yy < y1[None, :])
    tex = scene.pick("sea" if name == "sea" else "water", "water")
    # body colour: the photo's mean, pulled towards a water blue; detail: the photo's texture on the
    # ground plane (stretched along the horizon) plus procedural ripples
    photo = scene.ground_fill(tex, scene.horizon, rng.uniform(0.4, 1.0), aniso=rng.uniform(2.0, 5.0))
    body = tex.mean * 0.5 + np.array([0.12, 0.3, 0.42], np.float32) * rng.uniform(0.7, 1.3) * 0.5
    detail = luminance(photo) - luminance(tex.mean[None, :])[0]
    u, v, level, d = scene.ground_uv(scene.horizon, rng.uniform(0.2, 0.5) / scene.px, 1.5)
    waves = np.sin(v[:, None] * rng.uniform(0.3, 0.8) + 3 * fbm(rng, scene.h, scene.w, cells=4, octaves=2, aspect=4))
    waves = waves * np.clip(d / (0.3 * scene.h), 0, 1)  # ripples fade into the distance
    col = body + (detail[..., None] * rng.uniform(0.4, 0.9) + waves[..., None] * 0.03)
    col = scene.jitter(col, 0.1)
    # mirror the rows above the horizon, rippled and darkened
    ys = np.arange(scene.h)
    src = np.clip((2 * scene.horizon - ys).astype(int), 0, scene.h - 1)
    ripple = (fbm(rng, scene.h, scene.w, cells=3, octaves=2, aspect=0.15) - 0.5) * 10 * scene.px * (1 - calm + 0.2)
    xs = np.clip((c.xx + ripple).astype(int), 0, scene.w - 1)
    refl = c.img[src[:, None], xs] * rng.uniform(0.65, 0.85)
    mix = calm * rng.uniform(0.4, 0.8)
    skyish = scene.horizon_colour * 0.6 + scene.zenith * 0.4
    col = col * (1 - mix) + refl * mix
    col = col * 0.8 + skyish * 0.2 * (1 - mix)
    if scene.mood == "sunset" and scene.sun_x is not None:
        glint = np.exp(-np.abs(c.xx - scene.sun_x) / (scene.w * 0.05)) * fbm(rng, scene.h, scene.w, 20, 2, aspect=0.1)
        col = col + (glint[..., None] * np.array([0.5, 0.35, 0.15]))
    col = scene.haze(col, scene.horizon, 0.3)
    c.paint(hard, np.clip(col, 0, 1), name, feather=0.6 * scene.px)
    return hard


def river_colour(scene: Scene) -> np.ndarray:
    rng = scene.rng
    col = scene.ground_fill(scene.pick("water"), scene.horizon, rng.uniform(0.5, 1.2), aniso=rng.uniform(1, 2))
    skyish = scene.horizon_colour * 0.5 + scene.zenith * 0.5
    return col * 0.55 + skyish * 0.45
