"""The weight-file adapter: inflate a 2D checkpoint with no model code (numpy + safetensors only)."""

from .weights import inflate_state_dict, inflate_weights_file, plan_state_dict

__all__ = ["inflate_state_dict", "inflate_weights_file", "plan_state_dict"]
