"""Procedural landscape composites: a random layout (horizon, sky, clouds, mountains, hills, ground bands,
water, roads, trees, bushes, rocks, flowers) painted with textures cut from real photos.

The layout fixes the label map exactly: every layer has a hard mask (its label) and a feathered alpha
(its image), painted back to front, so a pixel's label is the last layer whose hard mask covers it.
Everything is drawn with one `numpy.random.Generator`, so a seed gives the same sample.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spadekit.data.labels import landscape_labels
from spadekit.data.landscape_noise import blur_mask, fbm, fbm1d, luminance, smooth, smoothstep
from spadekit.data.landscape_textures import Texture, load_textures

ID = {label.name: label.id for label in landscape_labels().labels}

TRUNKS = ("PW2",)  # forest crops full of trunks: treelines and hills, not single crowns
PEBBLES = ("TP2", "ET11", "ET12", "SI_gravel", "PW1")  # pebble / gravel crops: ground, not boulders

SCENES = ("meadow", "beach", "lake", "river", "alpine", "desert", "winter", "rocky", "coast")
SCENE_WEIGHTS = np.array([0.18, 0.13, 0.13, 0.11, 0.13, 0.08, 0.1, 0.06, 0.08])


class Canvas:
    """Image [h, w, 3] float in [0, 1] + label map [h, w] uint8 of raw ids."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), dtype=np.float32)
        self.label = np.full((h, w), ID["sky"], dtype=np.uint8)
        self.yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
        self.xx = np.arange(w, dtype=np.float32)[None, :] + 0.5

    def paint(self, hard: np.ndarray, colour, name: str | None, feather: float = 0.7,
              alpha: np.ndarray | None = None) -> None:
        if alpha is None:
            alpha = blur_mask(hard, feather) if feather > 0 else hard.astype(np.float32)
        colour = np.asarray(colour, dtype=np.float32)
        self.img += (colour - self.img) * alpha[..., None]
        if name is not None:
            self.label[hard] = ID[name]


class Scene:
    """One composite. `size` is the output side in pixels; everything scales with it."""

    def __init__(self, rng: np.random.Generator, h: int, w: int):
        self.rng = rng
        self.c = Canvas(h, w)
        self.h, self.w = h, w
        self.tex = load_textures()
        self.px = w / 256.0   # pixels per "256-px unit": sizes are authored at 256 px
        self.kind = SCENES[rng.choice(len(SCENES), p=SCENE_WEIGHTS / SCENE_WEIGHTS.sum())]

    # ------------------------------------------------------------------ helpers
    def pick(self, material: str, fallback: str | None = None, exclude: tuple[str, ...] = ()) -> Texture:
        options = self.tex.get(material) or self.tex.get(fallback or "", [])
        if exclude:
            kept = [t for t in options if not Path(t.name).stem.startswith(exclude)]
            options = kept or options
        return options[int(self.rng.integers(len(options)))]

    def jitter(self, colour: np.ndarray, amount: float = 0.08) -> np.ndarray:
        gain = 1.0 + self.rng.uniform(-amount, amount)
        tint = 1.0 + self.rng.uniform(-amount / 2, amount / 2, size=3)
        return colour * (gain * tint).astype(np.float32)

    def flat_fill(self, tex: Texture, scale: float, mask_rows: slice | None = None) -> np.ndarray:
        """Texture at a uniform scale (texels per pixel) over the canvas, random offset, random flip."""
        u = self.c.xx[0] * scale + self.rng.uniform(0, 1000)
        v = self.c.yy[:, 0] * scale + self.rng.uniform(0, 1000)
        if self.rng.random() < 0.5:
            u = u[::-1]
        level = int(np.clip(np.floor(np.log2(max(scale, 1e-3)) + 0.3), 0, 3))
        return tex.sample_grid(u, v, level)

    def ground_uv(self, horizon: float, near_scale: float, aniso: float):
        """Perspective ground plane below `horizon`: texel coords (u, v) and a mip level per pixel."""
        d = np.maximum(self.c.yy - horizon, 0.6)
        d_near = max(self.h - horizon, 1.0)
        k = near_scale * d_near
        m = d_near * aniso
        u = (self.c.xx - self.w / 2) * (k / d) + self.rng.uniform(1e5, 2e5)
        v = ((k * m) / d + self.rng.uniform(0, 1000))[:, 0]
        rate = (k / d) * np.maximum(1.0, m / d)
        level = np.clip(np.log2(np.maximum(rate, 1e-3)) + 0.8, 0, 5).astype(np.int8)[:, 0]
        return u, v, level, d

    def ground_fill(self, tex: Texture, horizon: float, near_scale: float | None = None,
                    aniso: float | None = None) -> np.ndarray:
        rng = self.rng
        near_scale = (near_scale or rng.uniform(0.6, 1.3)) / self.px
        aniso = aniso or rng.uniform(0.8, 2.0)
        u, v, level, d = self.ground_uv(horizon, near_scale, aniso)
        if rng.random() < 0.5:
            u = u[:, ::-1]
        col = tex.sample_rows(u, v, level)
        # the far field: detail fades into the material's colour with broad variation (no visible tiling)
        far = np.exp(-d / (0.22 * self.h)) * 0.8
        broad = tex.mean * (0.85 + 0.3 * fbm(rng, self.h, self.w, cells=3, octaves=2, aspect=4))[..., None]
        return col * (1 - far[..., None]) + broad * far[..., None]

    def haze(self, colour: np.ndarray, horizon: float, strength: float) -> np.ndarray:
        """Atmospheric perspective: blend ground towards the horizon colour near the horizon."""
        d = np.maximum(self.c.yy - horizon, 0.0) / self.h
        t = strength * np.exp(-d / 0.06)
        return colour * (1 - t[..., None]) + self.horizon_colour * t[..., None]

    def shade_noise(self, cells: float, amount: float, aspect: float = 1.0) -> np.ndarray:
        n = fbm(self.rng, self.h, self.w, cells=cells, octaves=3, aspect=aspect)
        return (1.0 + amount * (n - 0.5) * 2.0)[..., None]

    # ------------------------------------------------------------------ layers
    def sky(self) -> None:
        rng, c = self.rng, self.c
        mood = rng.choice(["clear", "clear", "sunset", "overcast", "hazy"], p=[0.3, 0.2, 0.2, 0.18, 0.12])
        self.mood = mood
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
        self.zenith, self.horizon_colour = zen.astype(np.float32), np.minimum(hor, 1).astype(np.float32)
        t = np.clip(c.yy / max(self.horizon, 1.0), 0, 1) ** rng.uniform(0.8, 2.0)
        grad = self.zenith * (1 - t[..., None]) + self.horizon_colour * t[..., None]
        grad = np.broadcast_to(grad, (self.h, self.w, 3)).copy()
        if mood == "sunset":
            sx = rng.uniform(0.15, 0.85) * self.w
            r = np.sqrt((c.xx - sx) ** 2 + ((c.yy - self.horizon) * 1.8) ** 2) / self.w
            glow = np.exp(-r / rng.uniform(0.12, 0.3))[..., None]
            grad = grad + glow * np.array([0.35, 0.22, 0.05], dtype=np.float32)
            self.sun_x = sx
        # detail and colour from a real sky photo
        tex = self.pick("sky")
        photo = tex.resized(self.h, self.w)
        detail = photo - photo.reshape(-1, 3).mean(0)
        mix = rng.uniform(0.0, 0.45) if mood in ("clear", "hazy") else rng.uniform(0.0, 0.15)
        sky = grad * (1 - mix) + (photo * 0.6 + grad * 0.4) * mix + detail * rng.uniform(0.2, 0.6)
        c.img[:] = np.clip(sky, 0, 1)
        c.label[:] = ID["sky"]

    def clouds(self) -> None:
        rng, c = self.rng, self.c
        mood = self.mood
        p = {"clear": 0.7, "sunset": 0.75, "overcast": 1.0, "hazy": 0.4}[mood]
        if rng.random() > p:
            return
        aspect = rng.uniform(1.5, 4.0)
        n = fbm(rng, self.h, self.w, cells=rng.uniform(2.0, 5.0), octaves=5, aspect=aspect)
        # thinner towards the horizon (perspective) and random cover
        if mood == "overcast":
            th = rng.uniform(0.38, 0.5)
        else:
            th = rng.uniform(0.5, 0.62)
        fall = smoothstep(self.horizon * 1.05, self.horizon * rng.uniform(0.2, 0.6), c.yy)
        n = n * (0.75 + 0.25 * fall)
        soft = smoothstep(th - 0.03, th + 0.09, n)
        hard = n > th + 0.03
        if hard.mean() < 0.01:
            return
        # lighting: brighter where the density rises upwards, darker in thick bottoms
        above = np.roll(n, int(3 * self.px), axis=0)
        lit = np.clip(0.5 + (n - above) * 6.0, 0, 1)
        dense = smoothstep(th, th + 0.25, n)
        tex = self.pick("clouds")
        photo_l = luminance(tex.resized(self.h, self.w))[..., None]
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

    def mountains(self, count: int, snow: float) -> None:
        rng, c = self.rng, self.c
        for i in range(count):
            far = i < count - 1 or count == 1 and rng.random() < 0.4
            top = self.horizon - rng.uniform(0.15, 0.65 if not far else 0.4) * self.horizon
            cells = rng.uniform(1.0, 3.0)
            ridge = fbm1d(rng, self.w, cells=cells, octaves=6, ridged=rng.random() < 0.7)
            ridge = (ridge - ridge.min()) / max(ridge.max() - ridge.min(), 1e-6)
            ridge = ridge ** rng.uniform(1.0, 1.8)
            base = self.horizon - rng.uniform(0.0, 0.06) * self.h
            y_ridge = base - ridge * (base - top)
            hard = c.yy >= y_ridge[None, :]
            tex = self.pick("mountain", "rock") if rng.random() < 0.65 else self.pick("rock")
            col = self.flat_fill(tex, rng.uniform(0.8, 1.6) / self.px)
            col = self.jitter(col, 0.12)
            if self.kind == "desert":
                col = col * np.array([1.15, 0.92, 0.7], dtype=np.float32)
            # lit faces from the ridge slope + a rough 2D heightfield
            hf = fbm(rng, self.h, self.w, cells=rng.uniform(4, 9), octaves=4)
            gx = np.gradient(hf, axis=1) * self.w / 8
            light = rng.choice([-1.0, 1.0])
            slope = np.gradient(y_ridge)[None, :] * -light
            shade = np.clip(0.8 + light * gx * 0.6 + np.clip(slope, -1, 1) * 0.15, 0.4, 1.35)
            depth = np.clip((c.yy - y_ridge[None, :]) / max(self.horizon - top, 1), 0, 1)
            col = col * shade[..., None] * (1 - 0.25 * depth[..., None])
            # snow cap above a noisy snowline, more on lit faces
            snow_hard = np.zeros_like(hard)
            if snow > 0 and rng.random() < snow:
                line = top + (self.horizon - top) * rng.uniform(0.25, 0.6)
                jag = fbm(rng, self.h, self.w, cells=rng.uniform(6, 14), octaves=4)
                thresh = line + (jag - 0.5) * (self.horizon - top) * 0.7 + gx * light * 8 * self.px
                snow_hard = hard & (c.yy < thresh)
                stex = self.pick("snow")
                scol = self.flat_fill(stex, rng.uniform(0.5, 1.2) / self.px)
                scol = scol * np.clip(shade[..., None] * 1.1, 0.55, 1.15) * np.array([0.97, 0.99, 1.03])
                col = np.where(snow_hard[..., None], scol, col)
            haze = rng.uniform(0.3, 0.65) if far else rng.uniform(0.0, 0.25)
            col = col * (1 - haze) + self.horizon_colour * haze
            c.paint(hard, np.clip(col, 0, 1), "mountain", feather=0.6 * self.px)
            if snow_hard.any():
                c.label[snow_hard] = ID["snow"]

    def hills(self, count: int) -> None:
        rng, c = self.rng, self.c
        for i in range(count):
            height = rng.uniform(0.03, 0.14) * self.h
            ridge = fbm1d(rng, self.w, cells=rng.uniform(0.6, 1.8), octaves=3)
            ridge = (ridge - ridge.min()) / max(ridge.max() - ridge.min(), 1e-6)
            base = self.horizon + 1
            y_ridge = base - height * (0.35 + 0.65 * ridge)
            hard = c.yy >= y_ridge[None, :]
            mat = "tree" if rng.random() < 0.35 else ("grass" if self.kind != "desert" else "sand")
            if self.kind == "winter":
                mat = "snow"
            tex = self.pick(mat)
            col = self.flat_fill(tex, rng.uniform(1.5, 3.0) / self.px)
            col = self.jitter(col, 0.1) * (0.75 if mat == "tree" else 0.9)
            light = rng.choice([-1.0, 1.0])
            slope = np.gradient(y_ridge)[None, :] * -light / self.px
            shade = np.clip(0.92 + slope * 0.5, 0.6, 1.2)[..., None] * self.shade_noise(3, 0.15)
            col = col * shade
            haze = rng.uniform(0.15, 0.45) * (1 - i / max(count, 1))
            col = col * (1 - haze) + self.horizon_colour * haze
            c.paint(hard, np.clip(col, 0, 1), "hill", feather=0.7 * self.px)

    def treeline(self, snowy: bool = False) -> None:
        rng, c = self.rng, self.c
        height = rng.uniform(0.015, 0.06) * self.h
        bumps = fbm1d(rng, self.w, cells=rng.uniform(8, 30), octaves=3)
        bumps = np.abs(bumps) if rng.random() < 0.5 else (bumps + 1) / 2
        y_top = self.horizon + 1 - height * (0.4 + 0.6 * bumps)
        hard = c.yy >= y_top[None, :]
        tex = self.pick("tree")
        col = self.flat_fill(tex, rng.uniform(2.0, 4.0) / self.px) * rng.uniform(0.5, 0.8)
        if snowy:
            col = col * 0.6 + 0.4 * np.array([0.85, 0.88, 0.92])
        haze = rng.uniform(0.1, 0.4)
        col = col * (1 - haze) + self.horizon_colour * haze
        c.paint(hard, np.clip(col, 0, 1), "tree", feather=0.5 * self.px)

    def water(self, name: str, y0, y1: np.ndarray, calm: float) -> np.ndarray:
        """Water from y0 (the horizon, or a far shore per column) down to the boundary y1 (per column);
        reflects what is above the horizon."""
        rng, c = self.rng, self.c
        y0 = np.broadcast_to(np.asarray(y0, dtype=np.float32), (self.w,))[None, :]
        hard = (c.yy >= y0) & (c.yy < y1[None, :])
        tex = self.pick("sea" if name == "sea" else "water", "water")
        # body colour: the photo's mean, pulled towards a water blue; detail: the photo's texture on the
        # ground plane (stretched along the horizon) plus procedural ripples
        photo = self.ground_fill(tex, self.horizon, rng.uniform(0.4, 1.0), aniso=rng.uniform(2.0, 5.0))
        body = tex.mean * 0.5 + np.array([0.12, 0.3, 0.42], np.float32) * rng.uniform(0.7, 1.3) * 0.5
        detail = luminance(photo) - luminance(tex.mean[None, :])[0]
        u, v, level, d = self.ground_uv(self.horizon, rng.uniform(0.2, 0.5) / self.px, 1.5)
        waves = np.sin(v[:, None] * rng.uniform(0.3, 0.8) + 3 * fbm(rng, self.h, self.w, cells=4, octaves=2, aspect=4))
        waves = waves * np.clip(d / (0.3 * self.h), 0, 1)  # ripples fade into the distance
        col = body + (detail[..., None] * rng.uniform(0.4, 0.9) + waves[..., None] * 0.03)
        col = self.jitter(col, 0.1)
        # mirror the rows above the horizon, rippled and darkened
        ys = np.arange(self.h)
        src = np.clip((2 * self.horizon - ys).astype(int), 0, self.h - 1)
        ripple = (fbm(rng, self.h, self.w, cells=3, octaves=2, aspect=0.15) - 0.5) * 10 * self.px * (1 - calm + 0.2)
        xs = np.clip((c.xx + ripple).astype(int), 0, self.w - 1)
        refl = c.img[src[:, None], xs] * rng.uniform(0.65, 0.85)
        mix = calm * rng.uniform(0.4, 0.8)
        skyish = self.horizon_colour * 0.6 + self.zenith * 0.4
        col = col * (1 - mix) + refl * mix
        col = col * 0.8 + skyish * 0.2 * (1 - mix)
        if self.mood == "sunset" and hasattr(self, "sun_x"):
            glint = np.exp(-np.abs(c.xx - self.sun_x) / (self.w * 0.05)) * fbm(rng, self.h, self.w, 20, 2, aspect=0.1)
            col = col + (glint[..., None] * np.array([0.5, 0.35, 0.15]))
        col = self.haze(col, self.horizon, 0.3)
        c.paint(hard, np.clip(col, 0, 1), name, feather=0.6 * self.px)
        return hard

    def ground(self, material: str, name: str, y_top: np.ndarray | float, y_bottom: np.ndarray | float | None = None,
               darken: float = 1.0) -> np.ndarray:
        rng, c = self.rng, self.c
        y_top = np.broadcast_to(np.asarray(y_top, dtype=np.float32), (self.w,))[None, :]
        hard = c.yy >= y_top
        if y_bottom is not None:
            hard &= c.yy < np.broadcast_to(np.asarray(y_bottom, dtype=np.float32), (self.w,))[None, :]
        tex = self.pick(material)
        col = self.ground_fill(tex, self.horizon)
        # a second sampling (same or other texture of the material, other scale) in patches breaks tiling
        tex2 = self.pick(material) if rng.random() < 0.6 else tex
        col2 = self.ground_fill(tex2, self.horizon, rng.uniform(0.3, 0.8))
        col2 = col2 * (tex.mean / np.maximum(tex2.mean, 0.02)) ** 0.5
        m = fbm(rng, self.h, self.w, cells=3, octaves=3, aspect=3)
        m = smoothstep(0.4, 0.6, m)[..., None]
        col = col * (1 - m) + col2 * m
        col = self.jitter(col, 0.1) * darken * self.shade_noise(2.5, 0.18, aspect=3)
        if self.mood == "sunset":
            col = col * np.array([1.05, 0.9, 0.75], dtype=np.float32) * 0.85
        elif self.mood == "overcast":
            col = col * 0.85
        col = self.haze(col, self.horizon, rng.uniform(0.3, 0.7))
        c.paint(hard, np.clip(col, 0, 1), name, feather=0.8 * self.px)
        return hard

    def boundary(self, frac: float, wave: float, cells: float = 2.0) -> np.ndarray:
        """A ground band boundary at `frac` of the way from the horizon to the bottom, wavy in perspective."""
        d = (self.h - self.horizon) * frac
        y = self.horizon + d + fbm1d(self.rng, self.w, cells=cells, octaves=4) * wave * d
        return np.clip(y, self.horizon + 1, self.h + 2).astype(np.float32)

    def strip(self, name: str, material: str, width: float, wiggle: float, within: np.ndarray | None = None,
              colour_fn=None) -> np.ndarray:
        """A band on the ground plane (road, path, river): widens towards the viewer."""
        rng, c = self.rng, self.c
        d = np.maximum(c.yy - self.horizon, 0.6)
        depth = (self.h - self.horizon) / d          # 1 at the bottom row, grows with distance
        x0 = self.w * rng.uniform(0.2, 0.8)
        x_vanish = self.w * rng.uniform(0.25, 0.75)
        phase, freq = rng.uniform(0, 6.3), rng.uniform(0.3, 1.2)
        centre = x_vanish + (x0 - x_vanish) / depth + wiggle * self.w * np.sin(freq * np.log(depth) + phase) / depth ** 0.5
        half = width * self.w / 2 / depth
        hard = (np.abs(c.xx - centre) < half) & (c.yy > self.horizon + 1)
        if within is not None:
            hard &= within
        if not hard.any():
            return hard
        if colour_fn is not None:
            col = colour_fn()
        else:
            col = self.ground_fill(self.pick(material), self.horizon)
        if name == "road" and getattr(self, "_road_marks", False):
            # dashed centre line and edge lines, on the ground plane
            off = np.abs(c.xx - centre) / np.maximum(half, 1e-3)
            _, v, _, _ = self.ground_uv(self.horizon, 0.05, 1.0)
            dash = ((v[:, None] * rng.uniform(0.8, 1.6)) % 1.0) < 0.5
            line = ((off < 0.04) & dash) | ((off > 0.86) & (off < 0.92))
            col = np.where(line[..., None], np.array([0.85, 0.85, 0.8], np.float32), col)
        col = self.haze(self.jitter(col, 0.1), self.horizon, 0.5)
        c.paint(hard, np.clip(col, 0, 1), name, feather=0.7 * self.px)
        return hard

    def asphalt(self) -> np.ndarray:
        rng = self.rng
        g = rng.uniform(0.25, 0.42)
        n = fbm(rng, self.h, self.w, cells=40, octaves=2)
        col = np.full((self.h, self.w, 3), g, dtype=np.float32) * (0.85 + 0.3 * n)[..., None]
        if "road" in self.tex and rng.random() < 0.5:
            col = col * 0.5 + self.ground_fill(self.pick("road"), self.horizon) * 0.5
        self._road_marks = rng.random() < 0.6
        return col

    # objects ------------------------------------------------------------------
    def _blob(self, cx, cy, rx, ry, rough, flat_bottom=False):
        """Hard mask of a rough ellipse-ish blob inside its bounding box; returns (mask, y0, x0)."""
        rng = self.rng
        x0, x1 = int(max(0, cx - rx * 1.4 - 1)), int(min(self.w, cx + rx * 1.4 + 2))
        y0, y1 = int(max(0, cy - ry * 1.4 - 1)), int(min(self.h, cy + ry * 1.4 + 2))
        if x1 <= x0 or y1 <= y0:
            return None
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
        ang = np.arctan2((yy - cy) / ry, (xx - cx) / rx)
        r = np.hypot((xx - cx) / rx, (yy - cy) / ry)
        prof = fbm1d(rng, 64, cells=rng.uniform(3, 7), octaves=3)
        idx = ((ang + np.pi) / (2 * np.pi) * 63).astype(int)
        edge = 1.0 + rough * prof[idx]
        m = r < edge
        if flat_bottom:
            m &= yy < cy + ry * 0.35
        return m, y0, x0

    def _paint_local(self, mask, y0, x0, colour, name, feather=0.6):
        h, w = mask.shape
        big = np.zeros((self.h, self.w), dtype=bool)
        big[y0:y0 + h, x0:x0 + w] = mask
        pad = 3
        ys, xs = slice(max(0, y0 - pad), min(self.h, y0 + h + pad)), slice(max(0, x0 - pad), min(self.w, x0 + w + pad))
        alpha = np.zeros((self.h, self.w), dtype=np.float32)
        alpha[ys, xs] = blur_mask(big[ys, xs], feather)
        col = np.asarray(colour, dtype=np.float32)
        if col.ndim == 3:
            self.c.img[ys, xs] += (col[ys, xs] - self.c.img[ys, xs]) * alpha[ys, xs, None]
        else:
            self.c.img[ys, xs] += (col - self.c.img[ys, xs]) * alpha[ys, xs, None]
        self.c.label[big] = ID[name]

    def trees(self, count: int, on: np.ndarray, conifer_p: float, snowy: bool = False, min_d: float = 0.03) -> None:
        """Trees standing on pixels of `on` (a ground mask), far first, size by perspective."""
        rng, c = self.rng, self.c
        ys, xs = np.nonzero(on)
        if len(ys) == 0:
            return
        pick = rng.integers(len(ys), size=count)
        bases = sorted(zip(ys[pick].tolist(), xs[pick].tolist()))
        tex = self.pick("tree", exclude=TRUNKS)
        fill = self.flat_fill(tex, rng.uniform(0.8, 1.8) / self.px) * rng.uniform(0.6, 0.95)
        green = np.array([0.22, 0.36, 0.14], np.float32) * rng.uniform(0.7, 1.3)
        fill = self.jitter(fill * 0.6 + green * luminance(fill)[..., None] / max(float(luminance(tex.mean[None])[0]), 0.05) * 0.4, 0.15)
        for by, bx in bases:
            d = (by - self.horizon) / max(self.h - self.horizon, 1)
            if d < min_d:
                continue
            th = (rng.uniform(0.35, 1.0) * self.h * 0.9) * d + rng.uniform(2, 6) * self.px
            if rng.random() < conifer_p:
                tw = th * rng.uniform(0.28, 0.45)
                x0, x1 = int(max(0, bx - tw)), int(min(self.w, bx + tw + 1))
                y0, y1 = int(max(0, by - th)), int(min(self.h, by + 1))
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
                x0, x1 = int(max(0, ccx - cr * 1.5)), int(min(self.w, ccx + cr * 1.5 + 1))
                y0, y1 = int(max(0, by - th - cr * 0.3)), int(min(self.h, by + 1))
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                yy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
                xx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
                rag = fbm(rng, y1 - y0, x1 - x0, cells=max(2.0, (x1 - x0) / (6 * self.px)), octaves=2)
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
            clumps = fbm(rng, *mask.shape, cells=max(2.0, mask.shape[1] / (6 * self.px)), octaves=2)
            shade = (1.15 - 0.5 * np.clip((yy - (by - th)) / th, 0, 1) + self.sun_side * 0.2 * np.tanh((xx - bx) / max(th * 0.15, 1))
                     + (clumps - 0.5) * 0.6)
            col = local * np.clip(shade, 0.25, 1.5)[..., None]
            if snowy:
                sn = fbm(rng, *mask.shape, cells=max(3.0, mask.shape[1] / (2.5 * self.px)), octaves=2) > 0.55
                col = np.where(sn[..., None], np.array([0.85, 0.88, 0.95]) * shade[..., None], col)
            full = np.zeros_like(fill)
            full[ys_, xs_] = col
            haze = 0.35 * np.exp(-d / 0.12)
            full[ys_, xs_] = full[ys_, xs_] * (1 - haze) + self.horizon_colour * haze
            self._paint_local(mask, y0, x0, np.clip(full, 0, 1), "tree", feather=0.5 * self.px)

    def bushes(self, count: int, on: np.ndarray) -> None:
        rng = self.rng
        ys, xs = np.nonzero(on)
        if len(ys) == 0:
            return
        pick = rng.integers(len(ys), size=count)
        tex = self.pick("bush", "tree") if rng.random() < 0.6 else self.pick("tree", exclude=TRUNKS)
        fill = self.flat_fill(tex, rng.uniform(0.8, 1.5) / self.px) * rng.uniform(0.6, 0.9)
        green = np.array([0.2, 0.32, 0.12], np.float32) * rng.uniform(0.7, 1.3)
        rel = luminance(fill)[..., None] / max(float(luminance(tex.mean[None])[0]), 0.05)
        fill = self.jitter(fill * 0.5 + green * rel * 0.5, 0.15)
        fill = fill * (0.7 + 0.6 * fbm(rng, self.h, self.w, cells=self.w / (8 * self.px), octaves=2))[..., None]
        for by, bx in sorted(zip(ys[pick].tolist(), xs[pick].tolist())):
            d = (by - self.horizon) / max(self.h - self.horizon, 1)
            if d < 0.05:
                continue
            r = (rng.uniform(0.05, 0.16) * self.h) * d + 1.5 * self.px
            res = self._blob(bx, by - r * 0.5, r * rng.uniform(1.1, 1.8), r, rough=0.3, flat_bottom=True)
            if res is None:
                continue
            m, y0, x0 = res
            yy = np.arange(y0, y0 + m.shape[0], dtype=np.float32)[:, None]
            shade = np.ones((self.h, self.w), np.float32)
            shade[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] = 1.1 - 0.4 * np.clip((yy - (by - 1.5 * r)) / (1.5 * r), 0, 1)
            self._paint_local(m, y0, x0, np.clip(fill * shade[..., None], 0, 1), "bush", feather=0.5 * self.px)

    def rocks(self, count: int, on: np.ndarray, big: bool = False) -> None:
        rng = self.rng
        ys, xs = np.nonzero(on)
        if len(ys) == 0:
            return
        pick = rng.integers(len(ys), size=count)
        tex = self.pick("rock", exclude=PEBBLES)
        fill = self.jitter(self.flat_fill(tex, rng.uniform(0.5, 1.2) / self.px), 0.15)
        grey = luminance(fill)[..., None]
        fill = grey + (fill - grey) * 0.6  # boulders: less saturated than the close-up crops
        if self.kind == "desert":
            fill = fill * np.array([1.1, 0.9, 0.7], dtype=np.float32)
        lx = rng.choice([-1.0, 1.0])
        for by, bx in sorted(zip(ys[pick].tolist(), xs[pick].tolist())):
            d = (by - self.horizon) / max(self.h - self.horizon, 1)
            if d < 0.04:
                continue
            r = (rng.uniform(0.03, 0.12 if not big else 0.3) * self.h) * d + 1.5 * self.px
            ry = r * rng.uniform(0.5, 0.9)
            res = self._blob(bx, by - ry * 0.4, r, ry, rough=rng.uniform(0.1, 0.3), flat_bottom=True)
            if res is None:
                continue
            m, y0, x0 = res
            yy = np.arange(y0, y0 + m.shape[0], dtype=np.float32)[:, None]
            xx = np.arange(x0, x0 + m.shape[1], dtype=np.float32)[None, :]
            local = 1.05 - 0.6 * np.clip((yy - (by - 1.4 * ry)) / (1.6 * ry), 0, 1) ** 0.8 + 0.2 * lx * np.clip((xx - bx) / r, -1, 1)
            # contact shadow on the ground around the foot of the rock (image only)
            sy0, sy1 = int(max(0, by - ry * 0.3)), int(min(self.h, by + ry * 0.25 + 1))
            sx0, sx1 = int(max(0, bx - r * 1.3)), int(min(self.w, bx + r * 1.3 + 1))
            if sy1 > sy0 and sx1 > sx0:
                syy = np.arange(sy0, sy1, dtype=np.float32)[:, None]
                sxx = np.arange(sx0, sx1, dtype=np.float32)[None, :]
                sh = np.clip(1 - np.hypot((sxx - bx) / (r * 1.3), (syy - by) / (ry * 0.3 + 1)), 0, 1)
                self.c.img[sy0:sy1, sx0:sx1] *= (1 - 0.45 * sh)[..., None]
            shade = np.ones((self.h, self.w), np.float32)
            shade[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] = local
            self._paint_local(m, y0, x0, np.clip(fill * shade[..., None], 0, 1), "rock", feather=0.5 * self.px)

    def flowers(self, on: np.ndarray) -> None:
        rng, c = self.rng, self.c
        n = fbm(rng, self.h, self.w, cells=rng.uniform(2, 5), octaves=4, aspect=3)
        hard = on & (n > rng.uniform(0.55, 0.65)) & (c.yy > self.horizon + 0.04 * self.h)
        if hard.sum() < 30:
            return
        base = self.ground_fill(self.pick("grass"), self.horizon) * 0.8
        # blossoms: a random dot pattern laid on the ground plane, so they shrink towards the horizon
        colours = [(0.95, 0.85, 0.15), (0.9, 0.2, 0.2), (0.7, 0.4, 0.85), (0.97, 0.97, 0.95), (0.95, 0.55, 0.1)]
        fc = np.array(colours[int(rng.integers(len(colours)))], dtype=np.float32)
        dot_tex = (rng.random((96, 96)) < rng.uniform(0.05, 0.14)).astype(np.float32)
        dot_tex = np.clip(smooth(dot_tex, 1) * 3.0, 0, 1) * rng.uniform(0.6, 0.9)
        u, v, level, d = self.ground_uv(self.horizon, rng.uniform(0.15, 0.35) / self.px, rng.uniform(1.0, 2.0))
        iu = u.astype(np.int64) % 96
        iv = (v.astype(np.int64) % 96)[:, None]
        far = np.clip(1.5 * self.px / np.maximum(d, 1.0), 0, 1)  # dots merge into a tint far away
        amt = np.clip(dot_tex[iv, iu] * (1 - far) + dot_tex.mean() * 1.5 * far, 0, 1)[..., None]
        shade = 0.75 + 0.5 * fbm(rng, self.h, self.w, cells=6, octaves=2)[..., None]
        col = base * (1 - amt) + fc * shade * amt
        if "flower" in self.tex and rng.random() < 0.4:
            col = col * 0.4 + self.ground_fill(self.pick("flower", exclude=("LW6",)), self.horizon) * 0.6
        col = self.haze(col, self.horizon, 0.5)
        c.paint(hard, np.clip(col, 0, 1), "flower", feather=0.8 * self.px)

    def fog(self) -> None:
        rng, c = self.rng, self.c
        n = fbm(rng, self.h, self.w, cells=3, octaves=4, aspect=4)
        band = np.exp(-((c.yy - self.horizon) / (rng.uniform(0.05, 0.14) * self.h)) ** 2)
        dens = band * (0.6 + 0.8 * n)
        hard = dens > 0.6
        col = self.horizon_colour * 0.5 + np.float32(rng.uniform(0.75, 0.9)) * 0.5
        alpha = np.clip(dens, 0, 1) ** 1.2
        c.paint(hard, col, "fog", alpha=alpha)

    # ------------------------------------------------------------------ scenes
    def build(self) -> Canvas:
        rng, c, h = self.rng, self.c, self.h
        kind = self.kind
        self.horizon = float(h * rng.uniform(0.3, 0.6))
        self.sun_side = float(rng.choice([-1.0, 1.0]))
        if kind in ("beach", "coast", "lake"):
            self.horizon = float(h * rng.uniform(0.35, 0.58))
        self.sky()
        self.clouds()
        # the distance: mountains / hills
        snow = {"alpine": 0.95, "winter": 0.9, "desert": 0.0}.get(kind, 0.35)
        mcount = {"alpine": int(rng.integers(1, 3)), "desert": int(rng.integers(0, 2)),
                  "beach": int(rng.random() < 0.25), "coast": int(rng.random() < 0.3)}.get(kind, int(rng.integers(0, 3)))
        if mcount:
            self.mountains(mcount, snow)
        if kind not in ("beach",) and rng.random() < 0.6:
            self.hills(int(rng.integers(1, 3)))
        if kind in ("meadow", "lake", "river", "alpine", "winter", "rocky") and rng.random() < 0.5:
            self.treeline(snowy=kind == "winter")
        if rng.random() < 0.12 and self.mood in ("overcast", "hazy", "clear"):
            self.fog()
        H = self.horizon
        if kind in ("beach", "coast"):
            shore = self.boundary(rng.uniform(0.15, 0.6), 0.25)
            self.water("sea", H, shore, calm=rng.uniform(0.0, 0.4))
            # foam line along the shore
            foam = (c.yy >= shore[None, :] - 1.5 * self.px * (shore - H)[None, :] / (h - H) * 4) & (c.yy < shore[None, :])
            fn = fbm(rng, h, self.w, cells=30, octaves=2, aspect=6)
            c.paint(foam, np.array([0.92, 0.94, 0.95], np.float32), None, alpha=blur_mask(foam, 1.0) * fn * 0.9)
            if kind == "beach":
                dune = self.boundary(rng.uniform(0.6, 1.2), 0.3) if rng.random() < 0.5 else None
                self.ground("sand", "sand", shore, dune)
                if dune is not None:
                    g = self.ground("grass", "grass", dune)
                    self.bushes(int(rng.integers(0, 4)), g)
                on = c.label == ID["sand"]
                self.rocks(int(rng.integers(0, 4)), on)
            else:
                self.ground("rock", "rock", shore, darken=0.9)
                grass = self.ground("grass", "grass", self.boundary(rng.uniform(0.4, 1.1), 0.4, cells=3))
                self.rocks(int(rng.integers(2, 8)), c.label == ID["rock"], big=True)
                self.bushes(int(rng.integers(0, 5)), grass)
        elif kind == "lake":
            far = self.boundary(rng.uniform(0.03, 0.12), 0.5)
            self.ground("grass", "grass", H + 1, far)
            self.treeline()
            shore = self.boundary(rng.uniform(0.35, 0.85), 0.3)
            self.water("water-other", far, np.maximum(shore, far + 1), calm=rng.uniform(0.5, 1.0))
            mat = "sand" if rng.random() < 0.3 else "grass"
            g = self.ground(mat, mat, shore)
            self.flowers(g) if rng.random() < 0.3 else None
            self.trees(int(rng.integers(0, 6)), g, conifer_p=0.6)
            self.rocks(int(rng.integers(0, 4)), g)
        elif kind == "river":
            g = self.ground("grass", "grass", H + 1)
            self.strip("river", "water", rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.25),
                       colour_fn=lambda: self._river_colour())
            if rng.random() < 0.3:
                self.strip("dirt", "dirt", rng.uniform(0.1, 0.25), 0.1, within=c.label == ID["grass"])
            g = c.label == ID["grass"]
            self.trees(int(rng.integers(2, 10)), g, conifer_p=0.4)
            self.bushes(int(rng.integers(0, 6)), g)
            self.rocks(int(rng.integers(0, 4)), g)
        elif kind == "alpine":
            g = self.ground("grass", "grass", H + 1)
            if rng.random() < 0.5:
                b = self.boundary(rng.uniform(0.1, 0.5), 0.5, cells=3)
                self.ground("rock" if rng.random() < 0.5 else "dirt", "rock" if rng.random() < 0.7 else "dirt", H + 1, b)
            if rng.random() < 0.5:
                self.strip("dirt", "dirt", rng.uniform(0.08, 0.2), 0.15, within=c.label == ID["grass"])
            g = c.label == ID["grass"]
            self.trees(int(rng.integers(0, 8)), g, conifer_p=0.9)
            self.rocks(int(rng.integers(0, 6)), g)
            if rng.random() < 0.3:
                self.flowers(g)
        elif kind == "desert":
            self.ground("sand", "sand", H + 1)
            if rng.random() < 0.6:
                n = fbm(rng, h, self.w, cells=2, octaves=3, aspect=4)
                dirt = (n > 0.55) & (c.yy > H + 2)
                c.paint(dirt, self.haze(self.ground_fill(self.pick("dirt"), H) * np.array([1.1, 0.95, 0.8], np.float32), H, 0.5),
                        "dirt", feather=1.0 * self.px)
            if rng.random() < 0.3:
                self.strip("road", "road", rng.uniform(0.2, 0.5), 0.05, colour_fn=self.asphalt)
            self.rocks(int(rng.integers(1, 7)), c.label == ID["sand"], big=True)
            self.bushes(int(rng.integers(0, 4)), c.label == ID["sand"])
        elif kind == "winter":
            self.ground("snow", "snow", H + 1)
            s = c.label == ID["snow"]
            if rng.random() < 0.3:
                shore = self.boundary(rng.uniform(0.1, 0.4), 0.3)
                self.water("water-other", H + 0.001, shore, calm=0.9)
                self.ground("snow", "snow", shore)
            self.trees(int(rng.integers(2, 12)), c.label == ID["snow"], conifer_p=0.85, snowy=rng.random() < 0.6)
            self.rocks(int(rng.integers(0, 3)), c.label == ID["snow"])
        elif kind == "rocky":
            self.ground("dirt", "dirt", H + 1)
            n = fbm(rng, h, self.w, cells=2.5, octaves=3, aspect=3)
            gr = (n > 0.5) & (c.yy > H + 2)
            c.paint(gr, self.haze(self.ground_fill(self.pick("grass"), H), H, 0.5), "grass", feather=1.0 * self.px)
            self.rocks(int(rng.integers(3, 10)), c.yy > H + 2, big=True)
            self.bushes(int(rng.integers(0, 5)), c.label == ID["grass"])
        else:  # meadow
            g = self.ground("grass", "grass", H + 1)
            r = rng.random()
            if r < 0.25:
                self.strip("road", "road", rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.15), colour_fn=self.asphalt)
            elif r < 0.55:
                self.strip("dirt", "dirt", rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.2))
            if rng.random() < 0.6:
                self.flowers(c.label == ID["grass"])
            g = c.label == ID["grass"]
            self.trees(int(rng.integers(0, 10)), g, conifer_p=0.35)
            self.bushes(int(rng.integers(0, 6)), g)
            self.rocks(int(rng.integers(0, 3)), g)
        return c

    def _river_colour(self) -> np.ndarray:
        rng = self.rng
        col = self.ground_fill(self.pick("water"), self.horizon, rng.uniform(0.5, 1.2), aniso=rng.uniform(1, 2))
        skyish = self.horizon_colour * 0.5 + self.zenith * 0.5
        return col * 0.55 + skyish * 0.45


def finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Global photometric jitter: exposure, contrast, saturation, white balance, gamma, sensor noise."""
    img = img * rng.uniform(0.85, 1.15)
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.85, 1.2) + mean
    grey = luminance(img)[..., None]
    img = grey + (img - grey) * rng.uniform(0.8, 1.25)
    img = img * (1 + rng.uniform(-0.05, 0.05, size=3)).astype(np.float32)
    img = np.clip(img, 0, 1) ** rng.uniform(0.85, 1.15)
    img = img + rng.normal(0, rng.uniform(0.003, 0.015), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def composite(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One composite: (image uint8 [size, size, 3], label map uint8 [size, size] of raw ids)."""
    scene = Scene(rng, size, size)
    canvas = scene.build()
    img = finish(rng, canvas.img)
    return (img * 255 + 0.5).astype(np.uint8), canvas.label
