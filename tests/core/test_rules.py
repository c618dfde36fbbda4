import numpy as np
import pytest

from inflate.core import OpSpec, RuleRegistryError, TimeSpec, get_rule, list_rules, register_rule


def test_every_family_is_registered() -> None:
    kinds = {rule.key.kind for rule in list_rules()}
    assert {"conv", "max_pool", "avg_pool", "adaptive_avg_pool", "batch_norm", "upsample", "pad"} <= kinds
    assert all(rule.doc for rule in list_rules())


def test_registering_a_kind_twice_raises() -> None:
    with pytest.raises(RuleRegistryError, match="a rule for op kind 'conv' is already registered"):
        register_rule("conv")(lambda op, time: None)


def test_unknown_kind_names_close_matches() -> None:
    with pytest.raises(RuleRegistryError, match=r"no inflation rule for op kind 'convv' \(did you mean conv"):
        get_rule("convv")


def test_conv_rule_describes_and_maps_weights() -> None:
    spec = OpSpec("conv", "stem", (3, 3), (2, 2), (1, 1), (1, 1), 1, role="stem")
    time = TimeSpec(kernel=3, stride=2)
    weight = np.ones((8, 3, 3, 3), np.float32)
    op, weights = get_rule("conv").inflate(spec, time, {"weight": weight, "bias": np.zeros(8, np.float32)})
    assert (op.kernel, op.stride, op.time_pads) == ((3, 3, 3), (2, 2, 2), (1, 1))
    assert weights["weight"].shape == (8, 3, 3, 3, 3)
    np.testing.assert_allclose(weights["weight"].sum(axis=2), weight)
    assert weights["bias"].shape == (8,)


def test_conv_rule_rejects_a_kernel_of_the_wrong_shape() -> None:
    spec = OpSpec("conv", "layer1.conv", (3, 3))
    with pytest.raises(Exception, match=r"weight of conv 'layer1.conv'.*got \(8, 3, 5, 5\)"):
        get_rule("conv").inflate(spec, TimeSpec(kernel=3), {"weight": np.ones((8, 3, 5, 5), np.float32)})


def test_global_adaptive_pool_pools_time() -> None:
    op = get_rule("adaptive_avg_pool").describe(OpSpec("adaptive_avg_pool", output_size=(1, 1)), TimeSpec())
    assert op.output_size == (1, 1, 1)
    op = get_rule("adaptive_avg_pool").describe(OpSpec("adaptive_avg_pool", output_size=(7, 7)), TimeSpec())
    assert op.output_size == (None, 7, 7)


def test_a_policy_asks_the_rule_for_its_temporal_defaults(monkeypatch) -> None:
    """A new kind with a time kernel needs no change to the policy: it reads Rule.temporal."""
    from inflate.core import get_policy
    from inflate.core import rules as core_rules
    from inflate.core.rules import Temporal
    from inflate.rules._common import windowed

    monkeypatch.setattr(core_rules, "_RULES", dict(core_rules._RULES))
    register_rule("toy_temporal", temporal=Temporal("kernel"))(windowed)
    register_rule("toy_frames")(windowed)
    policy = get_policy("i3d")
    assert policy.time_for(OpSpec("toy_temporal", "block.op", (5, 5))).kernel == 5
    # not a stem kind: the stem role does not give it the stem's stride
    stem_like = policy.time_for(OpSpec("toy_temporal", "op", (3, 3), role="stem"))
    assert (stem_like.kernel, stem_like.stride) == (3, 1)
    assert policy.time_for(OpSpec("conv", "conv1", (3, 3), role="stem")).stride == 2
    assert policy.time_for(OpSpec("toy_frames", "block.op", (5, 5))).kernel == 1
    with pytest.raises(RuleRegistryError, match="no inflation rule for op kind 'toy_unknown'"):
        policy.time_for(OpSpec("toy_unknown"))


def test_policies_and_presets_registered_twice_raise_the_registry_error() -> None:
    from inflate.core import Policy, register_policy
    from inflate.presets.registry import MODELS_3D, register_model

    with pytest.raises(RuleRegistryError, match="a policy named 'i3d_paper' is already registered"):
        register_policy(Policy("i3d_paper"))
    register_model("toy_registry_model")(lambda: None)
    try:
        with pytest.raises(RuleRegistryError, match="a 3D model named 'toy_registry_model' is already registered"):
            register_model("toy_registry_model")(lambda: None)
    finally:
        del MODELS_3D["toy_registry_model"]
