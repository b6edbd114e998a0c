"""Print the JSON Schema of the desired-state document (``make schema`` writes ``docs/desired-state.schema.json``).

Editors use it to check a desired-state YAML file while it is written: add
``# yaml-language-server: $schema=<path or URL>/desired-state.schema.json`` at its top.
"""

from __future__ import annotations

import json
import sys

from ecrcache.models.desired_state import DesiredStateDocument

SCHEMA_ID = "https://github.com/ecrcache/ecrcache/docs/desired-state.schema.json"


def generate() -> str:
    schema = DesiredStateDocument.model_json_schema(mode="validation")
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ecrcache desired state",
        **schema,
    }
    return json.dumps(document, indent=2) + "\n"


def main() -> None:
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
