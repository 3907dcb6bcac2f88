"""Exports for the engines users serve with: ONNX for onnxruntime, GGUF for llama.cpp (see DESIGN.md §8).

Each file is made by the engine's own converter from the transformers export, run in the engine and
compared with that export before its folder is renamed into place.
"""
