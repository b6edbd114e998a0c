"""``sam build`` (arm64, python3.13) builds the real tree; the layer is laid out as Lambda expects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.tools import TEMPLATE, python313_bin_dir, run, show, tool, tool_env

pytestmark = [pytest.mark.contract, pytest.mark.slow]


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``sam build`` once, outside the repo (build, cache and deps dirs all go to a temp dir)."""
    sam = tool("sam")
    work = tmp_path_factory.mktemp("sam")
    result = run(
        [sam, "build", "--template", TEMPLATE, "--build-dir", work / "build", "--cache-dir", work / "cache"],
        cwd=work,  # cached builds put .aws-sam/deps and build.toml in the working directory
        env=tool_env(path_prefix=python313_bin_dir()),
        timeout=840,
    )
    assert result.returncode == 0, show(result)
    return work / "build"


@pytest.mark.timeout(900)
def test_sam_build_layer_places_ecrcache_under_python(build_dir: Path) -> None:
    # GIVEN the built layer WHEN its content is inspected
    layer = build_dir / "CoreLayer"

    # THEN the library is importable from /opt/python, next to its dependencies
    assert (layer / "python" / "ecrcache" / "__init__.py").is_file()
    assert (layer / "python" / "aws_lambda_powertools").is_dir()
    assert (layer / "python" / "boto3").is_dir()


@pytest.mark.timeout(900)
def test_sam_build_layer_has_arm64_native_wheels_only(build_dir: Path) -> None:
    # GIVEN the built layer WHEN its compiled extensions are listed
    python_dir = build_dir / "CoreLayer" / "python"
    extensions = [path.name for path in python_dir.rglob("*.so")]

    # THEN pydantic_core is the aarch64 build and nothing was built for x86_64
    assert list((python_dir / "pydantic_core").glob("*aarch64*.so")), extensions
    assert [name for name in extensions if "x86_64" in name] == []


@pytest.mark.timeout(900)
def test_sam_build_api_function_contains_its_handler(build_dir: Path) -> None:
    # GIVEN the built function WHEN its files are inspected
    function = build_dir / "ApiFunction"

    # THEN the handler module is at the root of the code, as Handler: app.lambda_handler needs
    assert (function / "app.py").is_file()
