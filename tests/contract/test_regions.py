"""The Regions the models accept are the Regions botocore knows an ECR endpoint for, partition by partition."""

from __future__ import annotations

import boto3
import pytest

from ecrcache.models.common import ECR_REGIONS, ECR_REGIONS_BY_PARTITION

pytestmark = pytest.mark.contract


def test_ecr_regions_match_botocore() -> None:
    # GIVEN botocore's endpoint data for every partition
    session = boto3.Session()
    known = {p: set(session.get_available_regions("ecr", p)) for p in session.get_available_partitions()}
    # THEN the models accept exactly those Regions, each in its partition (update ECR_REGIONS_BY_PARTITION
    # when botocore is upgraded)
    assert {p: set(regions) for p, regions in ECR_REGIONS_BY_PARTITION.items()} == {p: r for p, r in known.items() if r}
    assert set(ECR_REGIONS) == set().union(*known.values())
