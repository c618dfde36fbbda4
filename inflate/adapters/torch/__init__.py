"""The torch adapter: inflate a torch module graph with the core's rules."""

from .convert import InflationReport, InflationSettings, default_input_size, inflate_model
from .inflated import InflatedModel
from .layout import Clip

__all__ = ["inflate_model", "InflationReport", "InflationSettings", "InflatedModel", "default_input_size", "Clip"]
