"""The core must work where torch cannot be imported."""

import subprocess
import sys
import textwrap


def test_core_imports_and_runs_without_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        sys.modules["onnx"] = None
        import numpy as np
        import inflate.core as core
        from inflate.core import get_rule, get_policy, OpSpec
        spec = OpSpec("conv", "conv1", (3, 3), role="stem")
        op, w = get_rule("conv").inflate(spec, get_policy("i3d").time_for(spec), {"weight": np.ones((2, 3, 3, 3), np.float32)})
        assert w["weight"].shape == (2, 3, 3, 3, 3), w["weight"].shape
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None and m.split(".")[0] == "torch"]
        import inflate
        assert inflate.TimeSpec is core.TimeSpec
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
