"""The Regions the models accept are the Regions botocore knows an ECR endpoint for."""

from __future__ import annotations

import boto3
import pytest

from ecrcache.models.common import ECR_REGIONS

pytestmark = pytest.mark.contract


def test_ecr_regions_match_botocore() -> None:
    # GIVEN botocore's endpoint data for every partition
    session = boto3.Session()
    known = {r for p in session.get_available_partitions() for r in session.get_available_regions("ecr", p)}
    # THEN the models accept exactly those Regions (update ECR_REGIONS when botocore is upgraded)
    assert set(ECR_REGIONS) == known
