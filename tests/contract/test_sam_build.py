"""``sam build`` (arm64, python3.13) builds the real tree; the layer is laid out as Lambda expects."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.contract.test_layer_services import called_operations, listed_services
from tests.contract.tools import TEMPLATE, python313_bin_dir, run, show, tool, tool_env
from tests.template import functions

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
def test_sam_build_layer_parses_and_dumps_yaml_without_libyaml(build_dir: Path, tmp_path: Path) -> None:
    # GIVEN the built layer, pruned of PyYAML's libyaml binding (2.8 MB: prune_layer.py)
    python_dir = build_dir / "CoreLayer" / "python"
    assert list((python_dir / "yaml").glob("*.so")) == []
    layer = _layer_with_local_natives(python_dir, tmp_path, keep=("yaml", "_yaml"))  # the layer's own yaml
    probe = (
        f"import sys; sys.path.insert(0, {str(layer)!r})\n"
        "import yaml\n"
        "assert not yaml.__with_libyaml__\n"
        "from ecrcache.parsing import dump_yaml, parse\n"
        "data = parse('rules:\\n  quay:\\n    upstream_kind: quay\\n    keep: [1, 2]\\n', 'yaml')\n"
        "assert data == {'rules': {'quay': {'upstream_kind': 'quay', 'keep': [1, 2]}}}, data\n"
        "assert parse(dump_yaml(data), 'yaml') == data\n"
    )

    # WHEN the layer's yaml parses and dumps a document with ecrcache's loader and dumper (nothing else on the path)
    result = run([sys.executable, "-I", "-B", "-c", probe], cwd=tmp_path, env={}, timeout=120)

    # THEN both work on the pure-Python PyYAML
    assert result.returncode == 0, show(result)


@pytest.mark.timeout(900)
def test_sam_build_api_function_contains_its_handler(build_dir: Path) -> None:
    # GIVEN the built function WHEN its files are inspected
    function = build_dir / "ApiFunction"

    # THEN the handler module is at the root of the code, as Handler: app.lambda_handler needs
    assert (function / "app.py").is_file()


LAYER_ZIPPED_LIMIT = 10 * 1024 * 1024
"""Issue 13's bound on the layer's zipped size, 10 MiB (a full botocore alone is 28 MB of models)."""

PROBE = """
import json, sys
from pathlib import Path
layer, services, calls = Path(sys.argv[1]), json.loads(sys.argv[2]), set(json.loads(sys.argv[3]))
import boto3, botocore.session
from botocore import xform_name
assert Path(botocore.__file__).is_relative_to(layer), botocore.__file__
session = botocore.session.get_session()
found = set()
for service in services:
    boto3.client(service, region_name="us-east-1")  # endpoint rule set and model, from the layer
    model = session.get_service_model(service)
    for operation in model.operation_names:
        if xform_name(operation) in calls:
            model.operation_model(operation)
            found.add(xform_name(operation))
    paginators = session.get_paginator_model(service)._paginator_config
    found |= {xform_name(name) for name in paginators if xform_name(name) in calls}
print(json.dumps(sorted(calls - found)))
"""


def _layer_zip_size(layer: Path, work: Path) -> int:
    archive = work / "layer.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:  # zlib's default level
        for path in sorted(layer.rglob("*")):
            out.write(path, path.relative_to(layer))
    return archive.stat().st_size


@pytest.mark.timeout(900)
def test_sam_build_layer_is_at_most_10_mb_zipped(build_dir: Path, tmp_path: Path) -> None:
    # GIVEN the built layer WHEN it is zipped as sam deploy uploads it
    size = _layer_zip_size(build_dir / "CoreLayer", tmp_path)

    # THEN it stays within issue 13's bound
    assert size <= LAYER_ZIPPED_LIMIT, f"{size:,} bytes zipped"


@pytest.mark.timeout(900)
def test_sam_build_layer_keeps_only_the_listed_botocore_models(build_dir: Path) -> None:
    # GIVEN the built layer WHEN its botocore and boto3 data are listed
    python_dir = build_dir / "CoreLayer" / "python"
    models = {path.name for path in (python_dir / "botocore" / "data").iterdir() if path.is_dir()}
    resources = {path.name for path in (python_dir / "boto3" / "data").iterdir() if path.is_dir()}

    # THEN exactly the services of aws-services.txt have a model; no pip RECORD was shipped
    assert models == listed_services()
    assert resources <= listed_services()
    assert list(python_dir.glob("*.dist-info/RECORD")) == []


@pytest.mark.timeout(900)
def test_sam_build_layer_ships_unchecked_bytecode_for_python_3_13(build_dir: Path) -> None:
    # GIVEN the built layer (Lambda's /opt is read only: bytecode not shipped is compiled at every cold start)
    python_dir = build_dir / "CoreLayer" / "python"
    sources = [*sorted((python_dir / "ecrcache").rglob("*.py")), python_dir / "botocore" / "client.py"]

    # WHEN each module's bytecode is looked up where this CPython 3.13 looks for it
    headers = {path: Path(importlib.util.cache_from_source(str(path))) for path in sources}
    absent = [str(path) for path, pyc in headers.items() if not pyc.is_file()]

    # THEN it is there, for 3.13's magic number, hash-based and unchecked (PEP 552 flags 0b01): a zip's
    # 2-second times would make timestamp-based files stale
    assert absent == []
    for pyc in headers.values():
        head = pyc.read_bytes()[:8]
        assert head[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(head[4:8], "little") == 0b01, pyc


@pytest.mark.timeout(900)
def test_sam_build_layer_botocore_loads_every_operation_the_code_calls(build_dir: Path) -> None:
    # GIVEN the layer's own botocore and boto3 (pure Python: they run here although the layer is arm64)
    python_dir = build_dir / "CoreLayer" / "python"
    calls = sorted(called_operations())

    # WHEN, with nothing but the layer on the path, a client of each listed service is made and the models
    # of the operations the code calls are loaded
    result = run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(python_dir)!r})\n{PROBE}",
            python_dir,
            json.dumps(sorted(listed_services())),
            json.dumps(calls),
        ],
        cwd=build_dir,
        env={"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
        timeout=120,
    )

    # THEN each one loads (none is missing from the trimmed data)
    assert result.returncode == 0, show(result)
    assert json.loads(result.stdout) == []


ENDPOINTS_PROBE = """
import json, sys
import boto3, botocore.session
services, regions = json.loads(sys.argv[1]), json.loads(sys.argv[2])
session = botocore.session.get_session()
seen = {}
for service in services:
    seen[service] = {"regions": session.get_available_regions(service)}
    for region in regions:
        client = session.create_client(service, region_name=region)
        signer = client._request_signer
        seen[service][region] = [client.meta.endpoint_url, signer.region_name, signer.signing_name]
print(json.dumps({"botocore": botocore.__file__, "seen": seen}))
"""
ENDPOINT_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "us-iso-east-1")
"""A Region of each partition a stack can run in (aws, aws-us-gov, aws-cn, aws-iso) and a few commercial ones."""


@pytest.mark.timeout(900)
def test_sam_build_layer_trimmed_endpoints_resolve_as_botocore_s_own(build_dir: Path) -> None:
    # GIVEN the layer, whose endpoints.json keeps only the listed services' entries (prune_layer.py), and this venv's
    # botocore, the same pinned version with all of them
    python_dir = build_dir / "CoreLayer" / "python"
    endpoints = json.loads((python_dir / "botocore" / "data" / "endpoints.json").read_text(encoding="utf-8"))
    kept = {key for partition in endpoints["partitions"] for key in partition["services"]}
    argv = [json.dumps(sorted(listed_services())), json.dumps(ENDPOINT_REGIONS)]
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    # WHEN a client of each listed service is made in a Region of each partition, with the layer alone and with the
    # venv's botocore
    layer = run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(python_dir)!r})\n{ENDPOINTS_PROBE}", *argv],
        cwd=build_dir,
        env=env,
        timeout=120,
    )
    full = run([sys.executable, "-I", "-c", ENDPOINTS_PROBE, *argv], cwd=build_dir, env=env, timeout=120)

    # THEN the layer's file names the listed services only (ECR by its endpoint prefix, api.ecr), and every client
    # has the same endpoint, signing Region and signing name, and every service the same Regions, as with the full file
    assert layer.returncode == 0, show(layer)
    assert full.returncode == 0, show(full)
    assert "api.ecr" in kept
    assert len(kept) == len(listed_services())
    trimmed, whole = json.loads(layer.stdout), json.loads(full.stdout)
    assert trimmed["botocore"].startswith(str(python_dir))
    assert not whole["botocore"].startswith(str(python_dir))
    assert trimmed["seen"] == whole["seen"]


NATIVE = ("pydantic_core", "yaml", "_yaml", "wrapt")
"""The layer's packages with arm64 extensions, which cannot load here: the development venv's copies (the
same pinned versions) stand in for them when the functions are imported from the layer."""

SETTINGS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_SERVICE_NAME": "ecrcache",
    "POWERTOOLS_METRICS_NAMESPACE": "ecrcache",
    "TABLE_NAME": "ecrcache-state",
    "WARMER_ROLE_ARN": "arn:aws:iam::123456789012:role/ecrcache-WarmWorkerFunctionRole-X",
    "ROTATOR_FUNCTION_ARN": "arn:aws:lambda:us-east-1:123456789012:function:ecrcache-rotator",
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:ecrcache-alerts",
    "WARM_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ecrcache-warm",
    "SHARD_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ecrcache-shards",
    "UPSTREAM_ENDPOINTS": "{}",
}


def _layer_with_local_natives(python_dir: Path, work: Path, *, keep: Sequence[str] = ()) -> Path:
    """A directory of links to the layer's top-level entries, the :data:`NATIVE` ones (but ``keep``) to this venv's."""
    import pydantic_core

    site = Path(pydantic_core.__file__).parents[1]
    mixed = work / "layer"
    mixed.mkdir()
    for entry in python_dir.iterdir():
        local = entry.name in NATIVE and entry.name not in keep
        (mixed / entry.name).symlink_to(site / entry.name if local else entry)
    return mixed


@pytest.mark.timeout(900)
@pytest.mark.parametrize("function", sorted(functions()))
def test_sam_build_function_imports_from_the_layer_alone(build_dir: Path, tmp_path: Path, function: str) -> None:
    # GIVEN the built function and the layer (with this machine's builds of its native extensions)
    layer = _layer_with_local_natives(build_dir / "CoreLayer" / "python", tmp_path)
    code = build_dir / function
    probe = (
        f"import sys; sys.path[:0] = [{str(code)!r}, {str(layer)!r}]\n"
        "import app, botocore\n"
        f"assert botocore.__file__.startswith({str(layer)!r}), botocore.__file__\n"
    )

    # WHEN its handler module is imported in a fresh interpreter that sees nothing else (-I)
    result = run(
        [sys.executable, "-I", "-B", "-c", probe],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), **SETTINGS_ENV},
        timeout=120,
    )

    # THEN it imports: every package it needs is in the layer, every client it makes has its model there
    assert result.returncode == 0, show(result)
