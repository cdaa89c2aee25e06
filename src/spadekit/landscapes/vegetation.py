"""Plants: treelines on the horizon, conifers and deciduous trees in perspective, bushes and flower fields."""
from __future__ import annotations

import numpy as np

from spadekit.landscapes.canvas import Scene
from spadekit.landscapes.noise import fbm, fbm1d, luminance, smooth

TRUNKS = ("PW2",)  # forest crops full of trunks: treelines and hills, not single crowns


def treeline(scene: Scene, snowy: bool = False) -> None:
    rng, c = scene.rng, scene.c
    height = rng.uniform(0.015, 0.06) * scene.h
    bumps = fbm1d(rng, scene.w, cells=rng.uniform(8, 30), octaves=3)
    bumps = np.abs(bumps) if rng.random() < 0.5 else (bumps + 1) / 2
    y_top = scene.horizon + 1 - height * (0.4 + 0.6 * bumps)
    hard = c.yy >= y_top[None, :]
    tex = scene.pick("tree")
    col = scene.flat_fill(tex, rng.uniform(2.0, 4.0) / scene.px) * rng.uniform(0.5, 0.8)
    if snowy:
        col = col * 0.6 + 0.4 * np.array([0.85, 0.88, 0.92])
    haze = rng.uniform(0.1, 0.4)
    col = col * (1 - haze) + scene.horizon_colour * haze
    c.paint(hard, np.clip(col, 0, 1), "tree", feather=0.5 * scene.px)


def trees(scene: Scene, count: int, on: np.ndarray, conifer_p: float, snowy: bool = False, min_d: float = 0.03) -> None:
    """Trees standing on pixels of `on` (a ground mask), far first, size by perspective."""
    rng = scene.rng
    ys, xs = np.nonzero(on)
    if len(ys) == 0:
        return
    pick = rng.integers(len(ys), size=count)
    bases = sorted(zip(ys[pick].tolist(), xs[pick].tolist()))
    tex = scene.pick("tree", exclude=TRUNKS)
    fill = scene.flat_fill(tex, rng.uniform(0.8, 1.8) / scene.px) * rng.uniform(0.6, 0.95)
    green = np.array([0.22, 0.36, 0.14], np.float32) * rng.uniform(0.7, 1.3)
    fill = scene.jitter(fill * 0.6 + green * luminance(fill)[..., None] / max(float(luminance(tex.mean[None])[0]), 0.05) * 0.4, 0.15)
    for by, bx in bases:
        d = (by - scene.horizon) / max(scene.h - scene.horizon, 1)
        if d < min_d:
            continue
        th = (rng.uniform(0.35, 1.0) * scene.h * 0.9) * d + rng.uniform(2, 6) * scene.px
        if rng.random() < conifer_p:
            tw = th * rng.uniform(0.28, 0.45)
            x0, x1 = int(max(0, bx - tw)), int(min(scene.w, bx + tw + 1))
            y0, y1 = int(max(0, by - th)), int(min(scene.h, by + 1))
            if x1 <= x0 or y1 <= y0:
                continue
            yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
            xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
            t = np.clip((yy - (by - th)) / th, 0, 1)
            tiers = rng.uniform(4, 9)
            saw = 0.55 + 0.45 * ((t * tiers) % 1.0)
            jag = fbm1d(rng, y1 - y0, cells=8, octaves=2)[:, None] * 0.15
            half = tw / 2 * np.minimum(t * 1.15, 1.0) * (saw + jag) * (1 - 0.15 * (t > 0.92))
            mask = np.abs(xx - bx) < half
            trunk = (np.abs(xx - bx) < max(0.6, tw * 0.06)) & (t > 0.88)
            mask |= trunk
        else:
            # deciduous: a crown of overlapping lumps with a ragged edge, on a trunk
            cr = th * rng.uniform(0.3, 0.45)
            ccx, ccy = bx + rng.uniform(-0.1, 0.1) * cr, by - th + cr
            x0, x1 = int(max(0, ccx - cr * 1.5)), int(min(scene.w, ccx + cr * 1.5 + 1))
            y0, y1 = int(max(0, by - th - cr * 0.3)), int(min(scene.h, by + 1))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
            xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
            rag = fbm(rng, y1 - y0, x1 - x0, cells=max(2.0, (x1 - x0) / (6 * scene.px)), octaves=2)
            field = np.full((y1 - y0, x1 - x0), -1.0, dtype=np.float32)
            for _ in range(int(rng.integers(3, 7))):
                ang = rng.uniform(0, 2 * np.pi)
                dist = rng.uniform(0.0, 0.55) * cr
                lx, ly = ccx + np.cos(ang) * dist * 1.2, ccy + np.sin(ang) * dist * 0.8
                lr = cr * rng.uniform(0.45, 0.7)
                field = np.maximum(field, 1.0 - np.hypot((xx - lx) / lr, (yy - ly) / (lr * 0.9)))
            mask = field + (rag - 0.5) * 0.35 > 0.0
            mask |= (np.abs(xx - bx) < max(0.7, th * 0.04)) & (yy > ccy)
        if not mask.any():
            continue
        # shading: a lit side and a dark underside, clumps of foliage from noise
        ys_, xs_ = slice(y0, y1), slice(x0, x0 + mask.shape[1])
        local = fill[ys_, xs_]
        yy = np.arange(y0, y1, dtype=np.float32)[:, None]
        xx = np.arange(x0, x0 + mask.shape[1], dtype=np.float32)[None, :]
        clumps = fbm(rng, *mask.shape, cells=max(2.0, mask.shape[1] / (6 * scene.px)), octaves=2)
        shade = (1.15 - 0.5 * np.clip((yy - (by - th)) / th, 0, 1) + scene.sun_side * 0.2 * np.tanh((xx - bx) / max(th * 0.15, 1))
                 + (clumps - 0.5) * 0.6)
        col = local * np.clip(shade, 0.25, 1.5)[..., None]
        if snowy:
            sn = fbm(rng, *mask.shape, cells=max(3.0, mask.shape[1] / (2.5 * scene.px)), octaves=2) > 0.55
            col = np.where(sn[..., None], np.array([0.85, 0.88, 0.95]) * shade[..., None], col)
        full = np.zeros_like(fill)
        full[ys_, xs_] = col
        haze = 0.35 * np.exp(-d / 0.12)
        full[ys_, xs_] = full[ys_, xs_] * (1 - haze) + scene.horizon_colour * haze
        scene.paint_local(mask, y0, x0, np.clip(full, 0, 1), "tree", feather=0.5 * scene.px)


def bushes(scene: Scene, count: int, on: np.ndarray) -> None:
    rng = scene.rng
    ys, xs = np.nonzero(on)
    if len(ys) == 0:
        return
    pick = rng.integers(len(ys), size=count)
    tex = scene.pick("bush", "tree") if rng.random() < 0.6 else scene.pick("tree", exclude=TRUNKS)
    fill = scene.flat_fill(tex, rng.uniform(0.8, 1.5) / scene.px) * rng.uniform(0.6, 0.9)
    green = np.array([0.2, 0.32, 0.12], np.float32) * rng.uniform(0.7, 1.3)
    rel = luminance(fill)[..., None] / max(float(luminance(tex.mean[None])[0]), 0.05)
    fill = scene.jitter(fill * 0.5 + green * rel * 0.5, 0.15)
    fill = fill * (0.7 + 0.6 * fbm(rng, scene.h, scene.w, cells=scene.w / (8 * scene.px), octaves=2))[..., None]
    for by, bx in sorted(zip(ys[pick].tolist(), xs[pick].tolist())):
        d = (by - scene.horizon) / max(scene.h - scene.horizon, 1)
        if d < 0.05:
            continue
        r = (rng.uniform(0.05, 0.16) * scene.h) * d + 1.5 * scene.px
        res = scene.blob(bx, by - r * 0.5, r * rng.uniform(1.1, 1.8), r, rough=0.3, flat_bottom=True)
        if res is None:
            continue
        m, y0, x0 = res
        yy = np.arange(y0, y0 + m.shape[0], dtype=np.float32)[:, None]
        shade = np.ones((scene.h, scene.w), np.float32)
        shade[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] = 1.1 - 0.4 * np.clip((yy - (by - 1.5 * r)) / (1.5 * r), 0, 1)
        scene.paint_local(m, y0, x0, np.clip(fill * shade[..., None], 0, 1), "bush", feather=0.5 * scene.px)


def flowers(scene: Scene, on: np.ndarray) -> None:
    rng, c = scene.rng, scene.c
    n = fbm(rng, scene.h, scene.w, cells=rng.uniform(2, 5), octaves=4, aspect=3)
    hard = on & (n > rng.uniform(0.55, 0.65)) & (c.yy > scene.horizon + 0.04 * scene.h)
    if hard.sum() < 30:
        return
    base = scene.ground_fill(scene.pick("grass"), scene.horizon) * 0.8
    # blossoms: a random dot pattern laid on the ground plane, so they shrink towards the horizon
    colours = [(0.95, 0.85, 0.15), (0.9, 0.2, 0.2), (0.7, 0.4, 0.85), (0.97, 0.97, 0.95), (0.95, 0.55, 0.1)]
    fc = np.array(colours[int(rng.integers(len(colours)))], dtype=np.float32)
    dot_tex = (rng.random((96, 96)) < rng.uniform(0.05, 0.14)).astype(np.float32)
    dot_tex = np.clip(smooth(dot_tex, 1) * 3.0, 0, 1) * rng.uniform(0.6, 0.9)
    u, v, level, d = scene.ground_uv(scene.horizon, rng.uniform(0.15, 0.35) / scene.px, rng.uniform(1.0, 2.0))
    iu = u.astype(np.int64) % 96
    iv = (v.astype(np.int64) % 96)[:, None]
    far = np.clip(1.5 * scene.px / np.maximum(d, 1.0), 0, 1)  # dots merge into a tint far away
    amt = np.clip(dot_tex[iv, iu] * (1 - far) + dot_tex.mean() * 1.5 * far, 0, 1)[..., None]
    shade = 0.75 + 0.5 * fbm(rng, scene.h, scene.w, cells=6, octaves=2)[..., None]
    col = base * (1 - amt) + fc * shade * amt
    if "flower" in scene.tex and rng.random() < 0.4:
        col = col * 0.4 + scene.ground_fill(scene.pick("flower", exclude=("LW6",)), scene.horizon) * 0.6
    col = scene.haze(col, scene.horizon, 0.5)
    c.paint(hard, np.clip(col, 0, 1), "flower", feather=0.8 * scene.px)
