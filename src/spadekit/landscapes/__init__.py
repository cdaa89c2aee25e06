"""The procedural landscape renderer behind `spadekit data make-landscapes` and the bundled model's data.

    noise       fractal noise, blurs and smooth steps
    textures    texture crops of real photos (the committed assets) with mip levels
    canvas      the canvas (image + label map) and the painter's tools every layer uses
    sky         sky gradient and photo detail, clouds, fog
    terrain     mountains, hills, ground bands, roads and paths, rocks
    water       sea and lakes with reflections, river colour
    vegetation  treelines, trees, bushes, flower fields
    compose     the scene kinds: which layers, in which order; one composite per call
    photos      the real-photo source: annotated photos, their label maps, random crops
    dataset     samples by (seed, index), the written dataset and its CLI
    paintings   the hand-authored starter paintings of the demo and the app
"""
from spadekit.landscapes.dataset import generate_sample, make_landscapes, palette_entries, write_palette
from spadekit.landscapes.photos import load_annotations, real_sample, render_annotation

__all__ = ["generate_sample", "make_landscapes", "palette_entries", "write_palette", "load_annotations",
           "real_sample", "render_annotation"]
