"""The layers talk through their public seams (docs/backends/writing.md).

- Only ``client/`` calls a backend: no module outside ``client/`` and
  ``backends/`` imports ``postroom.backends`` (the package's ``__init__`` may
  re-export ``Backend``, ``Capabilities``, ``open_backend``: naming the seam is not
  calling it) or reaches an object's ``.backend``.
- A backend imports the model and nothing above it: no ``client/``, ``runtime/``,
  ``server/``, ``cli/``, ``testing/``, ``demo/`` or ``bench``.
- The model imports only the model.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "postroom"
ABOVE_BACKENDS = ("client", "runtime", "server", "cli", "testing", "demo", "bench")


def _package(path: Path) -> tuple[str, ...]:
    return path.relative_to(SRC.parent).parts[:-1]


def _imports(path: Path, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module imported by ``path``, as a dotted absolute name."""
    package = _package(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join((*base, node.module) if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # ``from . import x`` names a module
                yield node.lineno, f"{module}.{alias.name}"


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _violations(path: Path, source: str | None = None) -> list[str]:
    tree = ast.parse(source if source is not None else path.read_text(), str(path))
    layer, found = _layer(path), []
    for line, module in _imports(path, tree):
        parts = module.split(".")
        if parts[0] != "postroom" or len(parts) < 2:
            continue
        target = parts[1]
        if layer == "backends" and target in ABOVE_BACKENDS:
            found.append(f"{line}: a backend imports {module}")
        if layer == "model" and target != "model":
            found.append(f"{line}: the model imports {module}")
        if layer not in ("client", "backends", "__init__") and target == "backends":
            found.append(f"{line}: imports {module} (go through AsyncClient)")
    if layer not in ("client", "backends"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "backend":
                found.append(f"{node.lineno}: touches .backend (use AsyncClient)")
    return [f"{path.relative_to(SRC.parent)}:{v}" for v in found]


@pytest.mark.parametrize(
    "path", _modules(), ids=lambda p: str(p.relative_to(SRC.parent))
)
def test_layering_module_uses_only_the_layers_below(path: Path) -> None:
    assert _violations(path) == []


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("server/_x.py", "from ..backends.redis import _keys\n", "imports postroom"),
        ("runtime/_x.py", "import postroom.backends.base\n", "imports postroom"),
        ("cli/_x.py", "async def f(c):\n    await c.backend.wait('q', 1)\n", "touches"),
        ("backends/_x.py", "from ..client.core import AsyncClient\n", "a backend"),
        ("backends/redis/_x.py", "from ...runtime import worker\n", "a backend"),
        ("model/_x.py", "from ..backends.base import Backend\n", "the model"),
    ],
)
def test_layering_check_finds_a_violation(
    where: str, source: str, expected: str
) -> None:
    found = _violations(SRC / where, source)
    assert found
    assert any(expected in f for f in found)
