"""Procedural landscape composites: a random layout (horizon, sky, clouds, mountains, hills, ground bands,
water, roads, trees, bushes, rocks, flowers) painted with textures cut from real photos.

The layout fixes the label map exactly: every layer has a hard mask (its label) and a feathered alpha
(its image), painted back to front, so a pixel's label is the last layer whose hard mask covers it.
Everything is drawn with one `numpy.random.Generator`, so a seed gives the same sample; the order of
the draws is part of the data (tests/test_landscapes_golden.py pins it).
"""
from __future__ import annotations

import numpy as np

from spadekit.landscapes import sky, terrain, vegetation, water
from spadekit.landscapes.canvas import ID, Canvas, Scene
from spadekit.landscapes.noise import blur_mask, fbm, luminance

SCENES = ("meadow", "beach", "lake", "river", "alpine", "desert", "winter", "rocky", "coast")
SCENE_WEIGHTS = np.array([0.18, 0.13, 0.13, 0.11, 0.13, 0.08, 0.1, 0.06, 0.08])


def build(scene: Scene) -> Canvas:
    """Paint the scene's kind of landscape layer by layer, back to front; returns the canvas."""
    rng, c, h = scene.rng, scene.c, scene.h
    kind = scene.kind
    scene.horizon = float(h * rng.uniform(0.3, 0.6))
    scene.sun_side = float(rng.choice([-1.0, 1.0]))
    if kind in ("beach", "coast", "lake"):
        scene.horizon = float(h * rng.uniform(0.35, 0.58))
    sky.paint(scene)
    sky.clouds(scene)
    # the distance: mountains / hills
    snow = {"alpine": 0.95, "winter": 0.9, "desert": 0.0}.get(kind, 0.35)
    mcount = {"alpine": int(rng.integers(1, 3)), "desert": int(rng.integers(0, 2)),
              "beach": int(rng.random() < 0.25), "coast": int(rng.random() < 0.3)}.get(kind, int(rng.integers(0, 3)))
    if mcount:
        terrain.mountains(scene, mcount, snow)
    if kind not in ("beach",) and rng.random() < 0.6:
        terrain.hills(scene, int(rng.integers(1, 3)))
    if kind in ("meadow", "lake", "river", "alpine", "winter", "rocky") and rng.random() < 0.5:
        vegetation.treeline(scene, snowy=kind == "winter")
    if rng.random() < 0.12 and scene.mood in ("overcast", "hazy", "clear"):
        sky.fog(scene)
    H = scene.horizon
    if kind in ("beach", "coast"):
        shore = terrain.boundary(scene, rng.uniform(0.15, 0.6), 0.25)
        water.surface(scene, "sea", H, shore, calm=rng.uniform(0.0, 0.4))
        # foam line along the shore
        foam = (c.yy >= shore[None, :] - 1.5 * scene.px * (shore - H)[None, :] / (h - H) * 4) & (c.yy < shore[None, :])
        fn = fbm(rng, h, scene.w, cells=30, octaves=2, aspect=6)
        c.paint(foam, np.array([0.92, 0.94, 0.95], np.float32), None, alpha=blur_mask(foam, 1.0) * fn * 0.9)
        if kind == "beach":
            dune = terrain.boundary(scene, rng.uniform(0.6, 1.2), 0.3) if rng.random() < 0.5 else None
            terrain.ground(scene, "sand", "sand", shore, dune)
            if dune is not None:
                g = terrain.ground(scene, "grass", "grass", dune)
                vegetation.bushes(scene, int(rng.integers(0, 4)), g)
            on = c.label == ID["sand"]
            terrain.rocks(scene, int(rng.integers(0, 4)), on)
        else:
            terrain.ground(scene, "rock", "rock", shore, darken=0.9)
            grass = terrain.ground(scene, "grass", "grass", terrain.boundary(scene, rng.uniform(0.4, 1.1), 0.4, cells=3))
            terrain.rocks(scene, int(rng.integers(2, 8)), c.label == ID["rock"], big=True)
            vegetation.bushes(scene, int(rng.integers(0, 5)), grass)
    elif kind == "lake":
        far = terrain.boundary(scene, rng.uniform(0.03, 0.12), 0.5)
        terrain.ground(scene, "grass", "grass", H + 1, far)
        vegetation.treeline(scene)
        shore = terrain.boundary(scene, rng.uniform(0.35, 0.85), 0.3)
        water.surface(scene, "water-other", far, np.maximum(shore, far + 1), calm=rng.uniform(0.5, 1.0))
        mat = "sand" if rng.random() < 0.3 else "grass"
        g = terrain.ground(scene, mat, mat, shore)
        if rng.random() < 0.3:
            vegetation.flowers(scene, g)
        vegetation.trees(scene, int(rng.integers(0, 6)), g, conifer_p=0.6)
        terrain.rocks(scene, int(rng.integers(0, 4)), g)
    elif kind == "river":
        g = terrain.ground(scene, "grass", "grass", H + 1)
        terrain.strip(scene, "river", "water", rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.25),
                   colour_fn=lambda: water.river_colour(scene))
        if rng.random() < 0.3:
            terrain.strip(scene, "dirt", "dirt", rng.uniform(0.1, 0.25), 0.1, within=c.label == ID["grass"])
        g = c.label == ID["grass"]
        vegetation.trees(scene, int(rng.integers(2, 10)), g, conifer_p=0.4)
        vegetation.bushes(scene, int(rng.integers(0, 6)), g)
        terrain.rocks(scene, int(rng.integers(0, 4)), g)
    elif kind == "alpine":
        g = terrain.ground(scene, "grass", "grass", H + 1)
        if rng.random() < 0.5:
            b = terrain.boundary(scene, rng.uniform(0.1, 0.5), 0.5, cells=3)
            terrain.ground(scene, "rock" if rng.random() < 0.5 else "dirt", "rock" if rng.random() < 0.7 else "dirt", H + 1, b)
        if rng.random() < 0.5:
            terrain.strip(scene, "dirt", "dirt", rng.uniform(0.08, 0.2), 0.15, within=c.label == ID["grass"])
        g = c.label == ID["grass"]
        vegetation.trees(scene, int(rng.integers(0, 8)), g, conifer_p=0.9)
        terrain.rocks(scene, int(rng.integers(0, 6)), g)
        if rng.random() < 0.3:
            vegetation.flowers(scene, g)
    elif kind == "desert":
        terrain.ground(scene, "sand", "sand", H + 1)
        if rng.random() < 0.6:
            n = fbm(rng, h, scene.w, cells=2, octaves=3, aspect=4)
            dirt = (n > 0.55) & (c.yy > H + 2)
            c.paint(dirt, scene.haze(scene.ground_fill(scene.pick("dirt"), H) * np.array([1.1, 0.95, 0.8], np.float32), H, 0.5),
                    "dirt", feather=1.0 * scene.px)
        if rng.random() < 0.3:
            terrain.strip(scene, "road", "road", rng.uniform(0.2, 0.5), 0.05, colour_fn=lambda: terrain.asphalt(scene))
        terrain.rocks(scene, int(rng.integers(1, 7)), c.label == ID["sand"], big=True)
        vegetation.bushes(scene, int(rng.integers(0, 4)), c.label == ID["sand"])
    elif kind == "winter":
        terrain.ground(scene, "snow", "snow", H + 1)
        if rng.random() < 0.3:
            shore = terrain.boundary(scene, rng.uniform(0.1, 0.4), 0.3)
            water.surface(scene, "water-other", H + 0.001, shore, calm=0.9)
            terrain.ground(scene, "snow", "snow", shore)
        vegetation.trees(scene, int(rng.integers(2, 12)), c.label == ID["snow"], conifer_p=0.85, snowy=rng.random() < 0.6)
        terrain.rocks(scene, int(rng.integers(0, 3)), c.label == ID["snow"])
    elif kind == "rocky":
        terrain.ground(scene, "dirt", "dirt", H + 1)
        n = fbm(rng, h, scene.w, cells=2.5, octaves=3, aspect=3)
        gr = (n > 0.5) & (c.yy > H + 2)
        c.paint(gr, scene.haze(scene.ground_fill(scene.pick("grass"), H), H, 0.5), "grass", feather=1.0 * scene.px)
        terrain.rocks(scene, int(rng.integers(3, 10)), c.yy > H + 2, big=True)
        vegetation.bushes(scene, int(rng.integers(0, 5)), c.label == ID["grass"])
    else:  # meadow
        g = terrain.ground(scene, "grass", "grass", H + 1)
        r = rng.random()
        if r < 0.25:
            terrain.strip(scene, "road", "road", rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.15), colour_fn=lambda: terrain.asphalt(scene))
        elif r < 0.55:
            terrain.strip(scene, "dirt", "dirt", rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.2))
        if rng.random() < 0.6:
            vegetation.flowers(scene, c.label == ID["grass"])
        g = c.label == ID["grass"]
        vegetation.trees(scene, int(rng.integers(0, 10)), g, conifer_p=0.35)
        vegetation.bushes(scene, int(rng.integers(0, 6)), g)
        terrain.rocks(scene, int(rng.integers(0, 3)), g)
    return c


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
    kind = SCENES[rng.choice(len(SCENES), p=SCENE_WEIGHTS / SCENE_WEIGHTS.sum())]
    canvas = build(Scene(rng, size, size, kind))
    img = finish(rng, canvas.img)
    return (img * 255 + 0.5).astype(np.uint8), canvas.label
