"""The weight-file adapter: bit-exact agreement with inflate_model, streaming, targets, no torch needed."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from inflate import InvalidInputError, ShapeMismatchError, inflate_model
from inflate.adapters.safetensors import inflate_state_dict, inflate_weights_file


@pytest.fixture(scope="module")
def resnet50_2d() -> torch.nn.Module:
    from inflate.testing import randomize_weights

    return randomize_weights(timm.create_model("resnet50").eval())


@pytest.mark.parametrize("init", ["tile", "center"])
def test_state_dict_equals_inflate_model_bit_exact(resnet50_2d, init: str) -> None:
    expected = inflate_model(resnet50_2d, t=8, init=init).state_dict()
    got = inflate_state_dict(resnet50_2d.state_dict(), t=8, init=init)
    assert list(got) == list(expected)
    for key in expected:
        assert got[key].dtype == expected[key].dtype and torch.equal(got[key], expected[key]), key


def test_file_streamed_equals_in_memory(tmp_path: Path, resnet50_2d) -> None:
    source = tmp_path / "r50.safetensors"
    save_file(resnet50_2d.state_dict(), str(source))
    plans = inflate_weights_file(source, tmp_path / "r50_3d.safetensors", t=8)
    assert sum(p.time_kernel is not None for p in plans) == 53
    loaded = load_file(str(tmp_path / "r50_3d.safetensors"))
    expected = inflate_model(resnet50_2d, t=8).state_dict()
    for key in expected:
        assert torch.equal(loaded[key], expected[key]), key
    # and a .pth input gives the same file contents
    torch.save(resnet50_2d.state_dict(), tmp_path / "r50.pth")
    inflate_weights_file(tmp_path / "r50.pth", tmp_path / "from_pth.safetensors", t=8)
    from_pth = load_file(str(tmp_path / "from_pth.safetensors"))
    assert all(torch.equal(from_pth[k], loaded[k]) for k in loaded)


def test_target_shapes_decide_time_and_mismatches_name_the_key() -> None:
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4), "fc.weight": torch.randn(2, 4)}
    target = {"conv.weight": torch.zeros(4, 3, 5, 3, 3), "conv.bias": torch.zeros(4), "fc.weight": torch.zeros(2, 4)}
    out = inflate_state_dict(state, t=8, target=target)
    assert out["conv.weight"].shape == (4, 3, 5, 3, 3)
    torch.testing.assert_close(out["conv.weight"].sum(2), state["conv.weight"])
    bad = dict(target, **{"fc.weight": torch.zeros(3, 4)})
    with pytest.raises(ShapeMismatchError, match=r"tensor 'fc.weight': expected shape \(3, 4\), got \(2, 4\)"):
        inflate_state_dict(state, t=8, target=bad)
    with pytest.raises(InvalidInputError, match=r"1 target keys are missing \(first: 'extra'\)"):
        inflate_state_dict(state, t=8, target=dict(target, extra=torch.zeros(1)))


def test_truncated_safetensors_is_refused_and_nothing_written(tmp_path: Path) -> None:
    source = tmp_path / "w.safetensors"
    save_file({"conv.weight": torch.randn(8, 3, 3, 3)}, str(source))
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(source.read_bytes()[:-50])
    with pytest.raises(InvalidInputError, match="is truncated"):
        inflate_weights_file(truncated, tmp_path / "out.safetensors", t=4)
    assert not (tmp_path / "out.safetensors").exists() and not list(tmp_path.glob(".out*"))


def test_core_and_weight_adapter_work_without_torch(tmp_path: Path) -> None:
    source = tmp_path / "w.safetensors"
    kernel = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    from safetensors.numpy import save_file as save_numpy

    save_numpy({"stem.weight": kernel, "body.weight": kernel[:, :, :1, :1].copy(), "bias": np.ones(8, np.float32)},
               str(source))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np
        from safetensors.numpy import load_file
        import inflate.core
        from inflate.adapters.safetensors import inflate_weights_file, inflate_state_dict
        inflate_weights_file({str(source)!r}, {str(tmp_path / 'out.safetensors')!r}, t=8)
        out = load_file({str(tmp_path / 'out.safetensors')!r})
        assert out["stem.weight"].shape == (8, 3, 3, 3, 3), out["stem.weight"].shape
        assert out["body.weight"].shape == (8, 3, 1, 1, 1)
        assert np.allclose(out["stem.weight"].sum(2), load_file({str(source)!r})["stem.weight"], atol=1e-6)
        assert [m for m in sys.modules if m.split(".")[0] == "torch" and sys.modules[m] is not None] == []
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
