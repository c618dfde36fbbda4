"""Reading a 2D attention's projections for divided attention's temporal branch (numpy only)."""

import numpy as np
import pytest

from inflate.rules.attention import plain_attention_weights, temporal_branch_weights

WIDTH = 4


def _linear(rng, rows, bias=True):
    weight = rng.standard_normal((rows, WIDTH)).astype(np.float32)
    return weight, (rng.standard_normal(rows).astype(np.float32) if bias else None)


def _weights(layout, rng):
    out = {}
    for name, rows in layout:
        weight, bias = _linear(rng, rows)
        out[f"{name}.weight"] = weight
        out[f"{name}.bias"] = bias
    proj, proj_bias = _linear(rng, WIDTH)
    out["proj.weight"], out["proj.bias"] = proj, proj_bias
    return out


@pytest.mark.parametrize("layout", [
    [("qkv", 3 * WIDTH)],
    [("q", WIDTH), ("kv", 2 * WIDTH)],  # Twins
    [("qk", 2 * WIDTH), ("v", WIDTH)],  # ConViT's GPSA
    [("q_proj", WIDTH), ("k_proj", WIDTH), ("v_proj", WIDTH)],  # EVA, unfused
], ids=lambda layout: "+".join(name for name, _ in layout))
def test_projections_are_stacked_in_q_k_v_order(layout) -> None:
    weights = _weights(layout, np.random.default_rng(0))
    plain = plain_attention_weights(weights, WIDTH)
    names = [name for name, _ in layout]
    np.testing.assert_array_equal(plain["qkv.weight"], np.concatenate([weights[f"{n}.weight"] for n in names]))
    np.testing.assert_array_equal(plain["qkv.bias"], np.concatenate([weights[f"{n}.bias"] for n in names]))
    np.testing.assert_array_equal(plain["proj.weight"], weights["proj.weight"])


def test_beit_style_separate_biases_with_zero_key_bias() -> None:
    rng = np.random.default_rng(1)
    weights = {"qkv.weight": rng.standard_normal((3 * WIDTH, WIDTH)), "q_bias": np.ones(WIDTH),
               "v_bias": np.full(WIDTH, 2.0), "proj.weight": rng.standard_normal((WIDTH, WIDTH))}
    plain = plain_attention_weights(weights, WIDTH)
    np.testing.assert_array_equal(plain["qkv.bias"], np.r_[np.ones(WIDTH), np.zeros(WIDTH), np.full(WIDTH, 2.0)])
    np.testing.assert_array_equal(plain["proj.bias"], np.zeros(WIDTH))


def test_one_by_one_convolutions_count_as_linear() -> None:
    rng = np.random.default_rng(2)
    weights = {"qkv.weight": rng.standard_normal((3 * WIDTH, WIDTH, 1, 1)),
               "proj.weight": rng.standard_normal((WIDTH, WIDTH, 1, 1))}
    plain = plain_attention_weights(weights, WIDTH)
    assert plain["qkv.weight"].shape == (3 * WIDTH, WIDTH) and plain["proj.weight"].shape == (WIDTH, WIDTH)


def test_unreadable_or_mismatched_projections_give_none_and_a_zero_temporal_fc() -> None:
    rng = np.random.default_rng(3)
    assert plain_attention_weights({"qkv.weight": rng.standard_normal((3 * WIDTH, WIDTH, 3, 3))}, WIDTH) is None
    assert plain_attention_weights({"qkv.weight": rng.standard_normal((3 * WIDTH, 2 * WIDTH)),
                                    "proj.weight": rng.standard_normal((WIDTH, WIDTH))}, WIDTH) is None
    branch = temporal_branch_weights({"pos_proj.weight": rng.standard_normal((WIDTH, 3))}, WIDTH)
    assert set(branch) == {"temporal_fc.weight", "temporal_fc.bias"}
    assert not branch["temporal_fc.weight"].any() and not branch["temporal_fc.bias"].any()
