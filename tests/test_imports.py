"""Import hygiene, read from the source with ``ast`` (nothing is imported).

- ``inflate.core`` imports only the standard library, numpy and itself.
- No import circles among inflate's modules: neither among module-level imports nor when the
  imports written inside functions (deferred, for torch-free or fast start-up paths) are counted
  too. Not counted: the implicit import of a parent package (a package's ``__init__`` importing
  its own submodules is not a circle), and ``importlib`` calls by name (``inflate.__getattr__``'s
  lazy table), which ``ast`` cannot resolve.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "inflate"


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = _modules()


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Absolute names an import statement loads: a module of inflate where it names one, else its package."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix for alias in node.names]


def _imports() -> dict[str, tuple[set[str], set[str]]]:
    """Per module: (names imported at module level, names imported inside functions)."""
    table = {}
    for module, (path, is_package) in MODULES.items():
        top: set[str] = set()
        deferred: set[str] = set()

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    (deferred if inside else top).update(t for t in _targets(module, is_package, child) if t)
                visit(child, inside)

        visit(ast.parse(path.read_text(), str(path)), False)
        table[module] = (top, deferred)
    return table


IMPORTS = _imports()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _graph(with_deferred: bool) -> dict[str, set[str]]:
    return {m: {t for t in top | (deferred if with_deferred else set()) if t in MODULES and t != m}
            for m, (top, deferred) in IMPORTS.items()}


def test_the_walk_sees_the_package() -> None:
    assert {"inflate", "inflate.core.rules", "inflate.adapters.torch.handlers.conv"} <= set(MODULES)
    assert "inflate.core.rules" in IMPORTS["inflate.rules.conv"][0]
    assert "inflate.adapters.torch" in IMPORTS["inflate.presets.i3d"][1]  # deferred


def test_core_imports_nothing_outside_the_core() -> None:
    allowed_roots = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    bad = {}
    for module, (top, deferred) in IMPORTS.items():
        if module != "inflate.core" and not module.startswith("inflate.core."):
            continue
        outside = sorted(t for t in top | deferred if not (t == "inflate.core" or t.startswith("inflate.core."))
                         and t.split(".")[0] not in allowed_roots)
        if outside:
            bad[module] = outside
    assert not bad, f"inflate.core must import only the standard library, numpy and itself: {bad}"


@pytest.mark.parametrize("with_deferred", [False, True], ids=["module-level", "with-deferred"])
def test_no_import_circles(with_deferred: bool) -> None:
    cycles = _cycles(_graph(with_deferred))
    assert not cycles, f"import circles: {cycles}"


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ----- explicit registration -----

def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT.parent)


def test_policies_and_rules_are_registered_by_importing_the_package_without_torch() -> None:
    result = _fresh(
        "import sys; sys.modules['torch'] = None; sys.modules['onnx'] = None\n"
        "import inflate.core as core\n"
        "print(core.get_policy('i3d_paper').name, core.get_rule('conv_transpose').key.kind,\n"
        "      sorted(m for m in sys.modules if m.startswith('inflate.presets.')))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "i3d_paper conv_transpose ['inflate.presets.policies']"


def test_weights_command_takes_a_preset_policy_in_a_fresh_process(tmp_path: Path) -> None:
    """``inflate weights --policy i3d_paper`` in a new interpreter (nothing imported beforehand)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(0)
    stem, body = rng.standard_normal((4, 3, 7, 7), np.float32), rng.standard_normal((4, 4, 3, 3), np.float32)
    save_file({"Conv3d_1a_7x7.conv.weight": stem, "Mixed_3b.conv.weight": body}, str(tmp_path / "2d.safetensors"))
    result = _fresh(
        "import sys\nfrom inflate.cli.app import app\n"
        f"sys.argv = ['inflate', 'weights', {str(tmp_path / '2d.safetensors')!r}, {str(tmp_path / '3d.safetensors')!r},"
        " '--policy', 'i3d_paper', '-t', '8']\napp()\n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = load_file(str(tmp_path / "3d.safetensors"))
    # i3d_paper: the 7×7 stem gets 7 frames, a 3×3 conv 3; "tile" repeats the 2D kernel and divides
    np.testing.assert_allclose(out["Conv3d_1a_7x7.conv.weight"], np.repeat(stem[:, :, None] / 7, 7, axis=2),
                               rtol=1e-6)
    np.testing.assert_allclose(out["Mixed_3b.conv.weight"], np.repeat(body[:, :, None] / 3, 3, axis=2), rtol=1e-6)
