import pytest

from inflate.core import InvalidInputError, OpSpec, TimeSpec, get_policy, list_policies


@pytest.mark.parametrize(
    "kernel,dilation,expected",
    [(1, 1, (0, 0)), (3, 1, (1, 1)), (4, 1, (1, 2)), (7, 1, (3, 3)), (3, 2, (2, 2)), (2, 3, (1, 2))],
    ids=lambda v: str(v),
)
def test_default_padding_keeps_length_odd_element_at_the_back(kernel, dilation, expected) -> None:
    spec = TimeSpec(kernel=kernel, dilation=dilation)
    assert spec.pads == expected
    assert spec.output_length(8) == 8


def test_strided_output_length() -> None:
    assert TimeSpec(kernel=7, stride=2).output_length(8) == 4
    assert TimeSpec(kernel=3, stride=2).output_length(1) == 1


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"kernel": 0}, "TimeSpec.kernel must be an integer >= 1, got 0"),
        ({"stride": 1.5}, "TimeSpec.stride must be an integer >= 1"),
        ({"init": "mean"}, "unknown init 'mean'"),
        ({"pad_mode": "reflect"}, "unknown temporal pad_mode 'reflect'"),
        ({"padding": (1,)}, r"padding must be \(front, back\)"),
    ],
    ids=["kernel0", "stride-float", "init", "pad-mode", "padding"],
)
def test_timespec_validation(fields, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        TimeSpec(**fields)


def test_i3d_policy() -> None:
    policy = get_policy("i3d")
    assert policy.time_for(OpSpec("conv", "layer1.0.conv2", (3, 3))).kernel == 3
    assert policy.time_for(OpSpec("conv", "layer1.0.conv1", (1, 1))).kernel == 1
    stem = policy.time_for(OpSpec("conv", "conv1", (7, 7), role="stem"))
    assert (stem.kernel, stem.stride) == (7, 2)
    assert policy.time_for(OpSpec("conv", "pre_logits.fc1", (7, 7), role="head")).kernel == 1
    assert policy.time_for(OpSpec("conv", "mixed.b1", (1, 7))).kernel == 1  # factorised: no time
    assert policy.time_for(OpSpec("max_pool", "maxpool", (3, 3), (2, 2))).kernel == 1


def test_named_policies_and_close_matches() -> None:
    assert {p.name for p in list_policies()} >= {"i3d", "i3d_k3", "stem_only"}
    assert get_policy("i3d_k3").time_for(OpSpec("conv", "x", (7, 7))).kernel == 3
    with pytest.raises(InvalidInputError, match=r"unknown policy 'i3dd' \(did you mean i3d"):
        get_policy("i3dd")


def test_overrides_by_pattern_and_callable() -> None:
    table = {"layer1.*": 1, "layer2.*.conv1": {"kernel": 3, "init": "center"}}
    policy = get_policy("i3d", overrides=table)
    assert policy.time_for(OpSpec("conv", "layer1.0.conv2", (3, 3))).kernel == 1
    chosen = policy.time_for(OpSpec("conv", "layer2.0.conv1", (1, 1)))
    assert (chosen.kernel, chosen.init) == (3, "center")
    assert policy.time_for(OpSpec("conv", "layer3.0.conv2", (3, 3))).kernel == 3

    def slow_only(op: OpSpec, proposed: TimeSpec) -> TimeSpec | None:
        return proposed.with_(kernel=1) if op.path.startswith("layer1") else None

    policy = get_policy("i3d", overrides=slow_only)
    assert policy.time_for(OpSpec("conv", "layer1.0.conv2", (3, 3))).kernel == 1
    assert policy.time_for(OpSpec("conv", "layer4.0.conv2", (3, 3))).kernel == 3


def test_bad_overrides_name_the_pattern() -> None:
    with pytest.raises(InvalidInputError, match=r"override for 'layer1\.\*' has unknown fields \['kernal'\]"):
        get_policy("i3d", overrides={"layer1.*": {"kernal": 3}}).time_for(OpSpec("conv", "layer1.0", (3, 3)))
    with pytest.raises(InvalidInputError, match="returned str for 'a'"):
        get_policy("i3d", overrides=lambda op, p: "3").time_for(OpSpec("conv", "a", (3, 3)))


def test_get_policy_applies_init_and_pad_mode() -> None:
    policy = get_policy("i3d", init="center", pad_mode="zeros")
    spec = policy.time_for(OpSpec("conv", "x", (3, 3)))
    assert (spec.init, spec.pad_mode) == ("center", "zeros")
    with pytest.raises(InvalidInputError, match="unknown init"):
        get_policy("i3d", init="bogus")
