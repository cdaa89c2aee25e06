"""The sky: a gradient by mood with a real sky photo's detail, clouds lit from above, and ground fog."""
from __future__ import annotations

import numpy as np

from spadekit.landscapes.canvas import ID, Scene
from spadekit.landscapes.noise import fbm, luminance, smoothstep


def paint(scene: Scene) -> None:
    rng, c = scene.rng, scene.c
    mood = rng.choice(["clear", "clear", "sunset", "overcast", "hazy"], p=[0.3, 0.2, 0.2, 0.18, 0.12])
    scene.mood = mood
    if mood == "clear":
        zen = np.array([rng.uniform(0.12, 0.3), rng.uniform(0.32, 0.5), rng.uniform(0.65, 0.88)])
        hor = np.array([rng.uniform(0.62, 0.82), rng.uniform(0.78, 0.9), rng.uniform(0.88, 0.98)])
    elif mood == "sunset":
        zen = np.array([rng.uniform(0.15, 0.35), rng.uniform(0.18, 0.35), rng.uniform(0.4, 0.6)])
        hor = np.array([rng.uniform(0.9, 1.0), rng.uniform(0.5, 0.75), rng.uniform(0.25, 0.5)])
    elif mood == "overcast":
        g = rng.uniform(0.45, 0.7)
        zen = np.array([g, g * 1.02, g * 1.08])
        hor = np.minimum(zen + rng.uniform(0.1, 0.25), 0.95)
    else:  # hazy
        zen = np.array([rng.uniform(0.45, 0.6), rng.uniform(0.6, 0.72), rng.uniform(0.78, 0.9)])
        hor = np.array([rng.uniform(0.82, 0.92)] * 3) * np.array([1.0, 1.0, 1.02])
    scene.zenith, scene.horizon_colour = zen.astype(np.float32), np.minimum(hor, 1).astype(np.float32)
    t = np.clip(c.yy / max(scene.horizon, 1.0), 0, 1) ** rng.uniform(0.8, 2.0)
    grad = scene.zenith * (1 - t[..., None]) + scene.horizon_colour * t[..., None]
    grad = np.broadcast_to(grad, (scene.h, scene.w, 3)).copy()
    if mood == "sunset":
        sx = rng.uniform(0.15, 0.85) * scene.w
        r = np.sqrt((c.xx - sx) ** 2 + ((c.yy - scene.horizon) * 1.8) ** 2) / scene.w
        glow = np.exp(-r / rng.uniform(0.12, 0.3))[..., None]
        grad = grad + glow * np.array([0.35, 0.22, 0.05], dtype=np.float32)
        scene.sun_x = sx
    # detail and colour from a real sky photo
    tex = scene.pick("sky")
    photo = tex.resized(scene.h, scene.w)
    detail = photo - photo.reshape(-1, 3).mean(0)
    mix = rng.uniform(0.0, 0.45) if mood in ("clear", "hazy") else rng.uniform(0.0, 0.15)
    sky = grad * (1 - mix) + (photo * 0.6 + grad * 0.4) * mix + detail * rng.uniform(0.2, 0.6)
    c.img[:] = np.clip(sky, 0, 1)
    c.label[:] = ID["sky"]


def clouds(scene: Scene) -> None:
    rng, c = scene.rng, scene.c
    mood = scene.mood
    p = {"clear": 0.7, "sunset": 0.75, "overcast": 1.0, "hazy": 0.4}[mood]
    if rng.random() > p:
        return
    aspect = rng.uniform(1.5, 4.0)
    n = fbm(rng, scene.h, scene.w, cells=rng.uniform(2.0, 5.0), octaves=5, aspect=aspect)
    # thinner towards the horizon (perspective) and random cover
    if mood == "overcast":
        th = rng.uniform(0.38, 0.5)
    else:
        th = rng.uniform(0.5, 0.62)
    fall = smoothstep(scene.horizon * 1.05, scene.horizon * rng.uniform(0.2, 0.6), c.yy)
    n = n * (0.75 + 0.25 * fall)
    soft = smoothstep(th - 0.03, th + 0.09, n)
    hard = n > th + 0.03
    if hard.mean() < 0.01:
        return
    # lighting: brighter where the density rises upwards, darker in thick bottoms
    above = np.roll(n, int(3 * scene.px), axis=0)
    lit = np.clip(0.5 + (n - above) * 6.0, 0, 1)
    dense = smoothstep(th, th + 0.25, n)
    tex = scene.pick("clouds")
    photo_l = luminance(tex.resized(scene.h, scene.w))[..., None]
    if mood == "sunset":
        light, dark = np.array([1.0, 0.8, 0.6]), np.array([0.45, 0.35, 0.45])
    elif mood == "overcast":
        g = rng.uniform(0.55, 0.85)
        light, dark = np.array([g + 0.1] * 3), np.array([g - 0.3] * 3) * np.array([1.0, 1.0, 1.05])
    else:
        light, dark = np.array([0.98, 0.98, 1.0]), np.array([0.6, 0.63, 0.7]) * rng.uniform(0.8, 1.15)
    shade = np.clip(lit[..., None] * 0.6 + (1 - dense[..., None]) * 0.4, 0, 1)
    col = dark * (1 - shade) + light * shade
    col = col * (0.75 + 0.5 * photo_l)
    sky_mask = c.label == ID["sky"]
    c.paint(hard & sky_mask, np.clip(col, 0, 1), "clouds", alpha=soft * sky_mask)


def fog(scene: Scene) -> None:
    rng, c = scene.rng, scene.c
    n = fbm(rng, scene.h, scene.w, cells=3, octaves=4, aspect=4)
    band = np.exp(-((c.yy - scene.horizon) / (rng.uniform(0.05, 0.14) * scene.h)) ** 2)
    dens = band * (0.6 + 0.8 * n)
    hard = dens > 0.6
    col = scene.horizon_colour * 0.5 + np.float32(rng.uniform(0.75, 0.9)) * 0.5
    alpha = np.clip(dens, 0, 1) ** 1.2
    c.paint(hard, col, "fog", alpha=alpha)
