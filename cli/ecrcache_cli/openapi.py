"""Print the API's OpenAPI 3.1 document (``make openapi`` writes it to ``docs/openapi.json``)."""

from __future__ import annotations

import json
import os
import sys


def generate() -> str:
    """The spec exactly as the deployed function serves it, pretty-printed with a trailing newline."""
    os.environ.setdefault("TABLE_NAME", "ecrcache-state")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from ecrcache.http.app import openapi_json  # noqa: PLC0415
    from functions.api.app import app  # noqa: PLC0415 - needs the environment above

    return json.dumps(json.loads(openapi_json(app)), indent=2, sort_keys=False) + "\n"


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
