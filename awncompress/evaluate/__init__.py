"""Evaluation: the method x width matrix, what a model is worth (metric, FLOPs, sizes),
latency, methods/ and metrics/."""
