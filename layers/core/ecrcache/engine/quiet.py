"""A Region's quiet digest: what lets a fast resync of a converged Region skip reading its applied fingerprints.

A fast resync plans each repository from its listing (``DescribeRepositories``) and the fingerprints ecrcache recorded
applying there: at 20,000 repositories those records are several 1 MB Query pages, read every 15 minutes to find,
almost always, nothing to do (issue 14: a no-op fast resync costs at most 5 DynamoDB calls).

:func:`quiet_digest` hashes everything a Region's fast plan depends on *but* those records: the desired and retired
rules there (with their credentials' state), ECR's rules, templates and pull-time update exclusions, what ecrcache owns,
each repository as listed, the stack's warmer role and role path, and the planning code's identity (``code``: a new
release may plan the same inputs differently; :mod:`ecrcache.adapters.code_identity`). A run that finds a Region quiet
(a fast plan with no action, nothing to forget) records the digest on the Region's status item; any write of the
Region's applied fingerprints removes it (before and after the write: :mod:`ecrcache.adapters.applied_records`). So
while the recorded digest equals the one computed now, the records
are those the quiet plan was made from, every other input is the same, and the fast plan is the same: no
per-repository action. The run then reads no applied fingerprint at all.

:func:`fast_view` is the Region as a fast run sees it (no repository's deep read): a run that read some repositories
deeply checks the fast plan of what it verified before it records a digest (a deep read can find nothing to do where
a fast plan would act: a policy changed outside ecrcache that it leaves in place).

Pure: no I/O, no clock, no environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ecrcache.engine.role_path import RoleScope
    from ecrcache.models.observed import AppliedFingerprints, DesiredRule, ObservedRegion, Ownership

__all__ = ["DIGEST_FORMAT", "fast_view", "quiet_digest", "with_records"]

DIGEST_FORMAT: Final = "quiet-1"
"""Changes whenever what the digest covers changes (a digest recorded under another format never matches)."""


def _rules(rules: Sequence[DesiredRule]) -> list[object]:
    return [rule.model_dump(mode="json") for rule in sorted(rules, key=lambda r: r.prefix)]


def quiet_digest(
    desired: Sequence[DesiredRule],
    retired: Sequence[DesiredRule],
    observed: ObservedRegion,
    ownership: Ownership,
    *,
    warmer_role: str | None,
    role_path: RoleScope,
    code: str,
) -> str:
    """The SHA-256 (hex) of a Region's fast-plan inputs other than its applied fingerprints (see the module)."""
    head = {
        "format": DIGEST_FORMAT,
        "code": code,
        "region": observed.region,
        "desired": _rules(desired),
        "retired": _rules(retired),
        "rules": [rule.model_dump(mode="json") for _, rule in sorted(observed.rules.items())],
        "templates": [template.model_dump(mode="json") for _, template in sorted(observed.templates.items())],
        "exclusions": None if observed.exclusions is None else sorted(observed.exclusions),
        "ownership": {
            "rules": sorted(ownership.rules),
            "templates": sorted(ownership.templates),
            "exclusions": sorted(ownership.exclusions),
        },
        "warmer_role": warmer_role,
        "role_path": [role_path.path, role_path.account, role_path.partition],
    }
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
    for name, repo in sorted(observed.repositories.items()):  # as listed: the deep read and the records left out
        created = repo.created_at.isoformat() if repo.created_at is not None else ""
        line = "\t".join((name, repo.arn, repo.image_tag_mutability, ",".join(repo.tag_mutability_exclusions), created))
        digest.update(f"\n{line}".encode())
    return digest.hexdigest()


def fast_view(observed: ObservedRegion) -> ObservedRegion:
    """``observed`` as a fast run reads it: no repository's deep read (their records stand in, as the planner does)."""
    if all(repo.details is None for repo in observed.repositories.values()) and not observed.unread:
        return observed
    repositories = {
        name: repo if repo.details is None else repo.model_copy(update={"details": None})
        for name, repo in observed.repositories.items()
    }
    return observed.model_copy(update={"repositories": repositories, "unread": ()})


def with_records(observed: ObservedRegion, applied: Mapping[str, AppliedFingerprints]) -> ObservedRegion:
    """``observed`` with each listed repository's applied fingerprints (read after the listing)."""
    repositories = {
        name: repo.model_copy(update={"applied": applied[name]}) if name in applied else repo
        for name, repo in observed.repositories.items()
    }
    return observed.model_copy(update={"repositories": repositories})
