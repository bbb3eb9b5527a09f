"""The layering of docs/architecture.md: the core never imports the command line, the experiment code or the
dataset loaders, and the experiment code never imports the command line.

Checked twice: statically (every import statement of a module, the ones inside functions too) and by
importing every core module in a fresh interpreter and looking at what got loaded. A deliberate
``from ..cli.common import say`` inside a function of ``w2gn/solvers/base.py`` fails the first check;
a module-level one fails both.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "w2gn"

#: top-level subpackages outside the core, by layer
INTERFACE = ("w2gn.cli", "w2gn.__main__")
EXPERIMENTS = ("w2gn.applications", "w2gn.testbeds")
DATA = ("w2gn.datasets",)
OUTSIDE_CORE = INTERFACE + EXPERIMENTS + DATA


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _all_modules() -> list[str]:
    return sorted(_module_name(p) for p in PKG.rglob("*.py"))


CORE = [m for m in _all_modules() if not _within(m, OUTSIDE_CORE)]


def _imports(module: str) -> set[str]:
    """Absolute names of the w2gn modules ``module`` imports anywhere in its source."""
    path = SRC.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # "from . import cli" names a module too
            found.update(f"{target}.{a.name}" for a in node.names)
    return {n for n in found if n == "w2gn" or n.startswith("w2gn.")}


def test_the_core_is_most_of_the_package():
    assert {"w2gn.solvers.base", "w2gn.solvers.w2gn", "w2gn.networks.dense_icnn", "w2gn.fitted_map",
            "w2gn.checkpoint", "w2gn.estimators"} <= set(CORE)
    assert not any(_within(m, OUTSIDE_CORE) for m in CORE)


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_cli_experiment_or_dataset_code(module):
    bad = sorted(n for n in _imports(module) if _within(n, OUTSIDE_CORE))
    assert not bad, f"{module} imports {bad} (see docs/architecture.md)"


@pytest.mark.parametrize("module", [m for m in _all_modules() if _within(m, EXPERIMENTS)])
def test_experiment_code_never_imports_the_cli(module):
    bad = sorted(n for n in _imports(module) if _within(n, INTERFACE))
    assert not bad, f"{module} imports {bad}; move what it needs out of w2gn.cli (e.g. w2gn.io.reports)"


def test_importing_every_core_module_loads_no_outside_code():
    code = ("import importlib, sys\n"
            f"for m in {CORE!r}: importlib.import_module(m)\n"
            f"print('\\n'.join(sorted(m for m in sys.modules if m.startswith({OUTSIDE_CORE!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "", f"importing the core loaded: {out.stdout.split()}"
