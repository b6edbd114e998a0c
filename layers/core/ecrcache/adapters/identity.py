"""Who the controller is: its own IAM identity, to recognise its own calls in CloudTrail events."""

from __future__ import annotations

from functools import cache

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ecrcache.adapters.aws import RETRY_CONFIG, classify


@cache
def caller_arn(region: str | None = None) -> str:
    """``sts:GetCallerIdentity`` (needs no permission): ``arn:aws:sts::<acct>:assumed-role/<role>/<session>``."""
    try:
        return boto3.client("sts", region_name=region, config=RETRY_CONFIG).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, "STS GetCallerIdentity") from exc
