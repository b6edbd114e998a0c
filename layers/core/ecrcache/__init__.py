"""ecrcache: a serverless controller for Amazon ECR pull-through cache (the library the Lambda layer ships).

Layers (enforced by import-linter): ``functions`` -> ``ecrcache.http`` / ``ecrcache.services`` ->
``ecrcache.engine`` / ``ecrcache.models``. The engine is pure (no I/O, no clock, no environment):
``engine.planner`` turns desired + observed state into a plan, ``engine.status`` turns a run's findings
into conditions. Services are the use cases; they reach AWS only through the ports in
``ecrcache.ports``, which ``ecrcache.adapters`` implement — the only modules that import boto3 or
speak HTTP. The CLI (``ecrcache_cli``) and the development world (``devstack``) are never imported here.
"""

__version__ = "0.1.0"
