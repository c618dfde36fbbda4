"""The ONNX adapter: rewrite a 2D ONNX graph into its 3D counterpart with the core's rules."""

from .graph import SUPPORTED_OPS, inflate_onnx

__all__ = ["inflate_onnx", "SUPPORTED_OPS"]
