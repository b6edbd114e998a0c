"""``DescribeRepositories`` with ECR's pagination (moto 5.2.5 ignores ``maxResults``/``nextToken``).

ECR pages repositories: ``maxResults`` 1-1000, default 100 (botocore's ECR model); a controller
that lists thousands of cached repositories must see several pages, as it would in AWS.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ecr.responses import ECRResponse

from devstack.aws.common import paginate


def describe_repositories(self: Any) -> Any:
    repositories = self.ecr_backend.describe_repositories(
        repository_names=self._get_param("repositoryNames"), registry_id=self._get_param("registryId")
    )
    ordered = sorted(repositories, key=lambda repo: repo.name)
    page, token = paginate(ordered, self._get_param("maxResults"), self._get_param("nextToken"))
    result: dict[str, Any] = {"repositories": page, "failures": []}
    if token:
        result["nextToken"] = token
    return ActionResult(result)


def install() -> None:
    ECRResponse.describe_repositories = describe_repositories  # type: ignore[method-assign]
