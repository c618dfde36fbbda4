"""The presets' inflation policies. numpy only: ``import inflate`` registers them, so
``get_policy("i3d_paper")`` and ``inflate weights --policy i3d_paper`` work in any process."""

from __future__ import annotations

from ..core.policy import Policy, register_policy

__all__ = ["I3D_POLICY"]

I3D_POLICY = register_policy(Policy(
    "i3d_paper",
    stem_stride=2,
    overrides={
        "MaxPool3d_2a_3x3": {"kernel": 1, "padding": "same"},
        "MaxPool3d_3a_3x3": {"kernel": 1, "padding": "same"},
        "MaxPool3d_4a_3x3": {"kernel": 3, "stride": 2, "padding": "same"},
        "MaxPool3d_5a_2x2": {"kernel": 2, "stride": 2, "padding": "same"},
        "Mixed_*.Branch_3.MaxPool3d_0a_3x3": {"kernel": 3, "stride": 1, "padding": "same"},
        "Logits.AvgPool_0a_7x7": {"kernel": 2, "stride": 1, "padding": (0, 0)},
        "Conv3d_1a_7x7.conv": {"kernel": 7, "stride": 2, "padding": "same"},
        "*.conv": {"padding": "same"},
    },
    description="I3D's own schedule for Inception-v1 (inception_v1_bn): 7×7×7/2 stem, temporal pools before "
                "Mixed_4b and Mixed_5b, 2×7×7 VALID logits pool, TF SAME time padding",
))
