"""The installed distribution: one package, a light import, no dependency on the training recipe, lint-clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import constrained

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "constrained"
HEAVY = ("transformers", "sqlglot", "lark", "torch", "numpy")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_import_loads_none_of_the_heavy_dependencies():
    assert _imported_after("import constrained") == set()


def test_the_ray_package_loads_neither_ray_nor_the_model_until_a_name_is_used():
    code = "import sys, constrained.ray; print(sorted({'ray', 'torch', 'starlette'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_a_regex_needs_no_transformers_sqlglot_or_lark():
    assert not _imported_after("import constrained; constrained.regex('[ab]+')") & {"transformers", "sqlglot", "lark"}


def test_every_public_name_resolves():
    for name in constrained.__all__:
        assert getattr(constrained, name) is not None, name
    with pytest.raises(AttributeError):
        constrained.no_such_name  # noqa: B018


def test_version_is_the_distributions():
    assert constrained.__version__ == metadata.version("constrained")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_library_never_imports_the_training_recipe_or_its_tools():
    for path in PACKAGE.rglob("*.py"):
        roots = {name.split(".")[0] for name in _imported_modules(path)}
        assert not roots & {"model", "benchmarks", "tests", "grammars"}, path


def test_shipped_data_lives_inside_the_package():
    assert (PACKAGE / "grammars" / "sql.lark").is_file()
    assert (PACKAGE / "checkpoint" / "model.safetensors").is_file()
    assert (PACKAGE / "py.typed").is_file()


def test_ruff_passes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.fail("ruff is part of the test extra: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", "--quiet", "."], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_holds_exactly_one_top_level_package(tmp_path):
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*command, str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("constrained-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"constrained"}
    assert "constrained/checkpoint/model.safetensors" in names
    assert "constrained/grammars/sql.lark" in names


def test_a_submodule_import_leaves_the_function_of_its_name():
    code = ("import constrained.json_schema, constrained.edit, constrained; "
            "print(callable(constrained.json_schema), callable(constrained.edit))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True"]
