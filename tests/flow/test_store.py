"""The uint8 flow store: quantisation round trip, atomic writes, and refusal of foreign files."""

from __future__ import annotations

import numpy as np
import pytest

from inflate.flow import BOUND, dequantize, flow_path, load_flow, quantize, save_flow

STEP = 2 * BOUND / 255  # one uint8 level in pixels (0.157)


def test_round_trip_within_one_step() -> None:
    flow = np.random.default_rng(0).uniform(-25, 25, size=(3, 8, 9, 2)).astype(np.float32)
    back = dequantize(quantize(flow), pixels=True)
    error = np.abs(back - np.clip(flow, -BOUND, BOUND))
    assert error.max() <= STEP / 2 + 1e-5  # rounding: half a level
    np.testing.assert_allclose(dequantize(quantize(flow)), back / BOUND, atol=1e-6)  # [-1, 1] for the network
    assert quantize(np.array([-BOUND, 0.0, BOUND])).tolist() == [0, 128, 255]


def test_save_load_is_atomic(tmp_path) -> None:
    u8 = quantize(np.random.default_rng(1).normal(size=(2, 5, 6, 2)) * 5)
    target = flow_path(tmp_path, "class/video.avi")
    assert target == tmp_path / "class" / "video.npz"
    save_flow(target, u8)
    np.testing.assert_array_equal(load_flow(target), u8)
    assert [p.name for p in target.parent.iterdir()] == ["video.npz"]  # no temporary left


def test_save_refuses_float_and_leaves_nothing(tmp_path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        save_flow(tmp_path / "x.npz", np.zeros((1, 4, 4, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_other_arrays(tmp_path) -> None:
    np.savez(tmp_path / "other.npz", frames=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="no 'flow' array"):
        load_flow(tmp_path / "other.npz")


def test_load_flow_refuses_pickles_bare_arrays_and_huge_headers(tmp_path):
    """A flow file from elsewhere: never unpickled, and its array header is checked before any
    data is decompressed (a header claiming 2·10¹² bytes is refused at once)."""
    import io
    import pickle
    import zipfile

    import numpy as np
    import pytest

    from inflate.flow.store import load_flow

    with open(tmp_path / "pickle.npz", "wb") as handle:
        pickle.dump({"flow": [1, 2]}, handle)
    np.save(tmp_path / "bare.npy", np.zeros((2, 4, 4, 2), np.uint8))
    (tmp_path / "bare.npy").rename(tmp_path / "bare.npz")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**6, 1000, 1000, 2)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("flow.npy", header.getvalue())
    for name, message in (("pickle", "holds pickled objects"), ("bare", "a bare array"), ("bomb", "at most 16 GiB")):
        with pytest.raises(ValueError, match=message) as caught:
            load_flow(tmp_path / f"{name}.npz")
        assert "allow_pickle" not in str(caught.value)
