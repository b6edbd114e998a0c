"""Sample values that several suites build their worlds from, defined once.

Plain data, no fixtures: the unit suite imports it as freely as the functional one.
"""

from __future__ import annotations

from typing import Any, Final

ORG_PULL: Final[dict[str, Any]] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "OrgPull",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-exampleorgid"}},
        }
    ],
}
"""A repository policy that lets the organisation's principals pull (the API docs' example)."""
