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
