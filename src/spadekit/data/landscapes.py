"""The landscape data moved to the `spadekit.landscapes` subpackage; these names stay importable from here."""
from spadekit.landscapes import generate_sample, load_annotations, make_landscapes, render_annotation, write_palette

__all__ = ["generate_sample", "load_annotations", "make_landscapes", "render_annotation", "write_palette"]
