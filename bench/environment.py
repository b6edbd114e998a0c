"""Importing this module pins the benchmarks' process to the embedded AWS and fake credentials.

It must be imported before boto3, Powertools or ``ecrcache``: they read the environment when imported
(Powertools' service name and switches) or when a client is made. Fake credentials and no endpoint or
profile from the caller's shell mean nothing a benchmark does can reach a real account.
"""

from __future__ import annotations

import os

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_SERVICE_NAME": "ecrcache-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "ecrcache-bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_DYNAMODB"):
    os.environ.pop(_name, None)
