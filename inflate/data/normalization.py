"""The input normalisation a model expects: [-1, 1] for the I3D presets, timm's ``pretrained_cfg`` otherwise."""

from __future__ import annotations

from ..core.errors import InvalidInputError

__all__ = ["I3D_MEAN", "I3D_STD", "input_normalization"]

# x / 255 * 2 - 1 == (x / 255 - 0.5) / 0.5: the paper's [-1, 1] RGB.
I3D_MEAN = (0.5, 0.5, 0.5)
I3D_STD = (0.5, 0.5, 0.5)


def input_normalization(model_name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel, for pixels scaled to [0, 1], that ``model_name`` was trained with.

    Names starting with ``i3d`` (the presets ``i3d_rgb``, ``i3d_flow``) give 0.5/0.5, i.e. [-1, 1].
    Any other name is a timm model (``resnet50`` or ``resnet50.a1_in1k``): its ``pretrained_cfg``
    mean and std, read from timm's registry without building weights or touching the network.
    The flow stream takes dequantised flow in [-1, 1] as it is and ignores these.
    """
    if model_name.lower().startswith("i3d"):
        return I3D_MEAN, I3D_STD
    import timm.models

    config = timm.models.get_pretrained_cfg(model_name)
    if config is None:
        if not timm.models.is_model(model_name.split(".")[0]):
            raise InvalidInputError(
                f"unknown model '{model_name}': not an I3D preset and not a timm model; "
                f"see `inflate list` for the names"
            )
        # A registered model without a default tag: its config comes with an unweighted instance.
        model = timm.create_model(model_name, pretrained=False)
        config = model.pretrained_cfg
        mean, std = config.get("mean"), config.get("std")
    else:
        mean, std = config.mean, config.std
    if mean is None or std is None:
        raise InvalidInputError(f"timm model '{model_name}' declares no input mean/std; pass them explicitly")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
