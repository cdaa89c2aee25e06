"""Label sets, semantic maps, datasets, transforms and data validation."""
