"""Remove from an installed layer (``python/``) what no function can load; run by ``layers/core/Makefile``.

* ``botocore/data/<service>/`` and ``boto3/data/<service>/`` of every service not in ``aws-services.txt``
  (botocore's loader finds a service by its directory; the top-level endpoints, partitions, retry and
  default-configuration files stay). In the kept services, ``examples-1.json``: only botocore's
  documentation generator reads it.
* In ``botocore/data/endpoints.json`` (1.25 MB, parsed whole by the first client a process makes), the entries of
  every service but the kept ones (by their models' ``endpointPrefix``, the key botocore looks them up by): a client
  of a service without a model cannot be made anyway. The partitions, their Regions and defaults stay
  (``tests/contract/test_sam_build.py`` checks every kept client resolves the same endpoints in every partition).
* ``__pycache__`` directories and ``*.pyc`` that pip or a copy brought (made afresh below).
* ``*.pyi`` stubs, ``py.typed`` markers and the ``*-stubs`` packages: type checkers' files.
* pip's ``RECORD`` and ``INSTALLER`` files in ``*.dist-info`` (``METADATA`` stays: importlib.metadata reads it).
* ``requirements.txt``, if a build put it into the layer, and ``bin/`` (console scripts: a layer runs none).
* PyYAML's libyaml binding (``yaml/_yaml*.so``, 2.8 MB): ecrcache parses with its own pure-Python loader (depth and
  size limits checked as it reads, :mod:`ecrcache.parsing`) and dumps with ``yaml.SafeDumper``; without the binding
  ``import yaml`` sets ``__with_libyaml__`` false and nothing else changes (``tests/contract/test_sam_build.py``).

Then it compiles the layer to bytecode (``__pycache__/*.cpython-313.pyc``, unchecked-hash): Lambda's ``/opt`` is
read only, so without them every cold start compiles each module it imports (the import of a handler takes
about twice as long). Unchecked-hash: a zip keeps times to 2 s, which would make timestamp-checked files
stale, and a layer version never changes. Not compiled (:data:`NOT_COMPILED`): Powertools utilities and
X-Ray SDK extensions, pydantic.v1 and others that no function imports on a cold start.

It refuses to run when a listed service has no model in the installed botocore (a typo would otherwise
ship a layer whose client creation fails only on Lambda).
"""

from __future__ import annotations

import compileall
import gzip
import json
import py_compile
import re
import shutil
import sys
from pathlib import Path

NOT_COMPILED = re.compile(
    r"/aws_lambda_powertools/utilities/(auth_alpha|kafka|streaming|parameters|circuit_breaker|feature_flags"
    r"|data_masking|validation)/|/aws_xray_sdk/ext/(?!botocore/|httplib/|util\.py|__init__\.py)"
    r"|/pydantic/(v1|experimental)/|/pydantic/mypy\.py|/urllib3/contrib/(emscripten|pyopenssl|socks)"
    r"|/s3transfer/(crt|processpool)\.py|/dateutil/(rrule|tz/win)\.py"
    r"|/aws_lambda_powertools/utilities/parser/envelopes/|/boto3/(s3|ec2)/|/botocore/stub"
    r"|/pydantic/color\.py|/pydantic/deprecated/(class_validators|copy_internals|decorator|json|parse|tools)\.py|/aws_lambda_powertools/utilities/idempotency/persistence/redis\.py"
)
"""Modules left without bytecode: no function imports them on a cold start (Powertools utilities, X-Ray SDK
extensions, pydantic.v1, ...; ``tests/contract/test_layer_bytecode.py`` imports every function's handler module
and checks none of what it loaded is here). A module without bytecode still imports, it is compiled then. Keeps
the zipped layer under 10 MB."""


def read_services(path: Path) -> list[str]:
    """The service names of ``path``: one a line, ``#`` starts a comment."""
    names = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return sorted(name for name in names if name)


def _prune_data(data: Path, keep: set[str], *, strict: bool) -> None:
    if not data.is_dir():
        return
    present = {entry.name for entry in data.iterdir() if entry.is_dir()}
    missing = keep - present
    if strict and missing:
        raise SystemExit(f"{data}: no model for service(s) {sorted(missing)} listed in aws-services.txt")
    for entry in data.iterdir():
        if entry.is_dir() and entry.name not in keep:
            shutil.rmtree(entry)
    for example in data.glob("*/*/examples-1.json*"):
        example.unlink()


def _endpoint_prefix(service: Path) -> str:
    """The ``endpointPrefix`` of the newest API version's model of ``service`` (``api.ecr`` for ``ecr``)."""
    newest = sorted(path for path in service.iterdir() if path.is_dir())[-1]
    plain, packed = newest / "service-2.json", newest / "service-2.json.gz"
    text = plain.read_bytes() if plain.is_file() else gzip.decompress(packed.read_bytes())
    prefix: str = json.loads(text)["metadata"]["endpointPrefix"]
    return prefix


def _trim_endpoints(data: Path, keep: set[str]) -> None:
    """Keep in ``endpoints.json`` only the kept services' entries, in every partition."""
    path = data / "endpoints.json"
    prefixes = {_endpoint_prefix(data / service) for service in keep}
    endpoints = json.loads(path.read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        partition["services"] = {key: value for key, value in partition["services"].items() if key in prefixes}
    path.write_text(json.dumps(endpoints, separators=(",", ":"), sort_keys=True), encoding="utf-8")


def _prune_files(layer: Path) -> None:
    for cache in [*layer.rglob("__pycache__"), *layer.glob("*-stubs")]:
        if cache.is_dir():
            shutil.rmtree(cache)
    patterns = ("*.pyc", "*.pyi", "py.typed", "*.dist-info/RECORD", "*.dist-info/INSTALLER")
    for pattern in patterns:
        for path in layer.rglob(pattern) if "/" not in pattern else layer.glob(pattern):
            path.unlink()
    (layer / "requirements.txt").unlink(missing_ok=True)
    for binding in layer.glob("yaml/_yaml*.so"):
        binding.unlink()
    shutil.rmtree(layer / "bin", ignore_errors=True)


def prune(layer: Path, services: list[str]) -> None:
    """Prune ``layer`` (the directory holding ``botocore/``, ``boto3/``...) to ``services``."""
    keep = set(services)
    _prune_data(layer / "botocore" / "data", keep, strict=True)
    _trim_endpoints(layer / "botocore" / "data", keep)
    _prune_data(layer / "boto3" / "data", keep, strict=False)
    _prune_files(layer)
    _compile(layer)


def _compile(layer: Path) -> None:
    if sys.version_info[:2] != (3, 13):
        raise SystemExit(f"bytecode for Lambda's python3.13 needs Python 3.13, not {sys.version.split()[0]}")
    ok = compileall.compile_dir(
        layer, quiet=1, rx=NOT_COMPILED, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    if not ok:
        raise SystemExit(f"{layer}: a module did not compile")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: prune_layer.py LAYER_PYTHON_DIR AWS_SERVICES_FILE")
    layer, services = Path(argv[0]), read_services(Path(argv[1]))
    if not (layer / "botocore" / "data").is_dir():
        raise SystemExit(f"{layer}: no botocore/data (not an installed layer)")
    prune(layer, services)


if __name__ == "__main__":
    main(sys.argv[1:])
