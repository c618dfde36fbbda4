"""Rule ``std_conv`` on numpy: the tiled kernel, standardised over (C_in, k_t, k, k) with the
inflated eps and scaled by the inflated scale, sums over time to the 2D standardised kernel."""

import numpy as np
import pytest

from inflate.core import InvalidInputError, get_rule
from inflate.core.spec import OpSpec, TimeSpec
from inflate.rules.std_conv import standardize_kernel


@pytest.mark.parametrize("k_t", [1, 2, 3, 5])
@pytest.mark.parametrize("scaled", [False, True], ids=["StdConv", "ScaledStdConv"])
def test_time_sum_of_standardised_kernel_is_2d_standardised(k_t: int, scaled: bool) -> None:
    rng = np.random.default_rng(k_t)
    weight = rng.normal(0.1, 0.02, (6, 4, 3, 3)).astype(np.float64)  # small variance: eps matters
    eps = 1e-4
    weights = {"weight": weight, "eps": np.float64(eps)}
    gain = scale = None
    if scaled:
        gain, scale = rng.uniform(0.5, 1.5, (6, 1, 1, 1)), 1.3 / np.sqrt(4 * 9)
        weights.update(gain=gain, scale=np.float64(scale))
    op, out = get_rule("std_conv").inflate(OpSpec("std_conv", "conv", (3, 3), padding=(1, 1)),
                                           TimeSpec(kernel=k_t), weights)
    assert op.kernel == (k_t, 3, 3) and out["weight"].shape == (6, 4, k_t, 3, 3)
    np.testing.assert_array_equal(out["weight"], np.repeat(weight[:, :, None] / k_t, k_t, axis=2))
    kernel3d = standardize_kernel(out["weight"], float(out["eps"]), gain, float(out["scale"]))
    kernel2d = standardize_kernel(weight, eps, gain, 1.0 if scale is None else scale)
    np.testing.assert_allclose(kernel3d.sum(axis=2), kernel2d, rtol=1e-12, atol=1e-12)
    # each slice standardised alike: the 3D op is still weight standardisation (zero mean per channel)
    np.testing.assert_allclose(kernel3d.reshape(6, -1).mean(axis=1), 0.0, atol=1e-12)


def test_standardize_kernel_matches_definition() -> None:
    weight = np.arange(24, dtype=np.float64).reshape(2, 3, 2, 2) ** 1.5
    got = standardize_kernel(weight, 0.0)
    for o in range(2):
        w = weight[o]
        np.testing.assert_allclose(got[o], (w - w.mean()) / w.std(), rtol=1e-12)


def test_center_init_refused_with_the_way_out() -> None:
    with pytest.raises(InvalidInputError, match="init 'center'.*override giving 'conv' a time kernel of 1"):
        get_rule("std_conv").describe(OpSpec("std_conv", "conv", (3, 3)), TimeSpec(kernel=3, init="center"))
    assert get_rule("std_conv").describe(OpSpec("std_conv", "conv", (3, 3)), TimeSpec(kernel=1, init="center"))
