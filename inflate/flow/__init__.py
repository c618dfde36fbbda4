"""Optical flow for the flow stream: TV-L1 (OpenCV or our batched PyTorch version) and its uint8 store."""

from .params import TVL1Params, to_gray
from .store import BOUND, dequantize, flow_path, load_flow, quantize, save_flow
from .tvl1 import tvl1

__all__ = ["tvl1", "TVL1Params", "to_gray", "BOUND", "quantize", "dequantize", "flow_path", "save_flow", "load_flow"]
