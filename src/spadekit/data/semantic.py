"""Semantic maps live in `spadekit.semantic` (models read them too); this name stays for data code."""
from spadekit.semantic import instance_edges, one_hot, semantic_map  # noqa: F401
