"""Data layer: pure readers (no pixels), format detection, torch dataset, splits, quality, stats."""
