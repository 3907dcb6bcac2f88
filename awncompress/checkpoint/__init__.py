"""Checkpoints on disk: uniform, per-layer and nested exports, their loader, provenance and the OUT/ layout."""
