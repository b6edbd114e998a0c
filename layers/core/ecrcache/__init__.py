"""ecrcache: a serverless controller for Amazon ECR pull-through cache.

Layers (enforced by import-linter): ``functions`` -> ``ecrcache.http`` / ``ecrcache.services`` ->
``ecrcache.engine`` / ``ecrcache.models``. Only ``ecrcache.adapters`` imports boto3 or speaks HTTP.
"""

__version__ = "0.1.0"
