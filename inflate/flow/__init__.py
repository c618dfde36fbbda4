"""Optical flow for the flow stream: TV-L1 (OpenCV or our batched PyTorch version) and its uint8 store."""

from .store import BOUND, dequantize, flow_path, load_flow, quantize, save_flow

__all__ = ["BOUND", "quantize", "dequantize", "flow_path", "save_flow", "load_flow"]
