import numpy as np
import pytest

from inflate.core import InvalidInputError, ShapeMismatchError, center_kernel, inflate_kernel, tile_kernel
from inflate.core.weights import center_index


@pytest.fixture
def kernel() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((4, 3, 3, 5)).astype(np.float32)


@pytest.mark.parametrize("k_t", [1, 2, 3, 7], ids=lambda k: f"kt{k}")
def test_tile_sums_back_to_2d(kernel: np.ndarray, k_t: int) -> None:
    out = tile_kernel(kernel, k_t)
    assert out.shape == (4, 3, k_t, 3, 5)
    assert out.dtype == kernel.dtype
    np.testing.assert_allclose(out.sum(axis=2), kernel, rtol=1e-6, atol=1e-6)
    for s in range(k_t):  # every slice is the 2D kernel over k_t
        np.testing.assert_allclose(out[:, :, s], kernel / k_t, rtol=1e-6)


@pytest.mark.parametrize("k_t", [1, 2, 3, 5], ids=lambda k: f"kt{k}")
def test_center_puts_kernel_in_middle_slice(kernel: np.ndarray, k_t: int) -> None:
    out = center_kernel(kernel, k_t)
    middle = center_index(k_t)
    np.testing.assert_array_equal(out[:, :, middle], kernel)
    others = [s for s in range(k_t) if s != middle]
    assert not out[:, :, others].any()


def test_tile_output_is_writable_and_owned(kernel: np.ndarray) -> None:
    out = tile_kernel(kernel, 1)
    assert out.flags.writeable and not np.shares_memory(out, kernel)


def test_inflate_kernel_dispatches_and_rejects_unknown_init(kernel: np.ndarray) -> None:
    np.testing.assert_array_equal(inflate_kernel(kernel, 3, "center"), center_kernel(kernel, 3))
    with pytest.raises(InvalidInputError, match="unknown init 'middle'.*tile, center"):
        inflate_kernel(kernel, 3, "middle")


def test_bad_kernels_are_refused(kernel: np.ndarray) -> None:
    with pytest.raises(ShapeMismatchError, match=r"got \(4, 3, 3\)"):
        tile_kernel(kernel[..., 0], 3)
    with pytest.raises(InvalidInputError, match="temporal kernel size must be an integer >= 1, got 0"):
        tile_kernel(kernel, 0)
    with pytest.raises(InvalidInputError, match="expected a numpy array, got list"):
        tile_kernel([[1.0]], 3)  # type: ignore[arg-type]
