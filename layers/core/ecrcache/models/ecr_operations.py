"""ECR's write operations, named once: the calls the controller makes, and the CloudTrail events
that mean ECR may have drifted from the desired state.

The reconciler writes rules and templates (:data:`RULE_WRITES`), the settings of cached
repositories (:data:`REPOSITORY_WRITES`) and the warm worker's pull-time update exclusion
(:data:`EXCLUSION_WRITES`). Anyone else making the same calls may undo what it
applied, so the CloudTrail events of those calls trigger a reconcile; so does the creation of a
repository (ECR's pull-through cache creates one on a first pull, and it needs its settings). The
controller's own calls come back as events too; the trigger ignores them by the caller's identity,
not by name.

``template.yaml``'s ``EcrDrift`` rule lists :data:`DRIFT_EVENTS`, so that EventBridge delivers
exactly these (a contract test keeps the two equal).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DRIFT_EVENTS",
    "EXCLUSION_WRITES",
    "REGISTRY_EVENTS",
    "REPOSITORY_EVENTS",
    "REPOSITORY_WRITES",
    "RULE_EVENTS",
    "RULE_WRITES",
    "WRITE_OPERATIONS",
]

RULE_WRITES: Final = frozenset(
    {
        "CreatePullThroughCacheRule",
        "UpdatePullThroughCacheRule",
        "DeletePullThroughCacheRule",
        "CreateRepositoryCreationTemplate",
        "UpdateRepositoryCreationTemplate",
        "DeleteRepositoryCreationTemplate",
    }
)
"""Writes of pull-through cache rules and repository creation templates."""
REPOSITORY_WRITES: Final = frozenset(
    {
        "PutLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "SetRepositoryPolicy",
        "DeleteRepositoryPolicy",
        "TagResource",
        "UntagResource",
        "PutImageTagMutability",
    }
)
"""Writes of the repository settings the controller manages (lifecycle, policy, tags, mutability); it removes
only the tag keys it applied, and someone else's ``UntagResource`` may remove one of the rule's."""
EXCLUSION_WRITES: Final = frozenset({"RegisterPullTimeUpdateExclusion", "DeregisterPullTimeUpdateExclusion"})
"""Writes of the registry's pull-time update exclusions (the warm worker's role is kept registered)."""
WRITE_OPERATIONS: Final = RULE_WRITES | REPOSITORY_WRITES | EXCLUSION_WRITES
"""Every ECR write the controller makes: call counts split into reads and writes with it."""

RULE_EVENTS: Final = RULE_WRITES
"""CloudTrail event names after which a rule or template may have drifted."""
REGISTRY_EVENTS: Final = RULE_EVENTS | EXCLUSION_WRITES
"""CloudTrail event names after which something registry-level (a rule, a template, the warmer's
exclusion) may have drifted: a reconcile of the call's Region, no repository read deeply."""
REPOSITORY_EVENTS: Final = REPOSITORY_WRITES | {"CreateRepository"}
"""CloudTrail event names after which a cached repository may have drifted (or is new)."""
DRIFT_EVENTS: Final = REGISTRY_EVENTS | REPOSITORY_EVENTS
"""The CloudTrail event names the reconciler subscribes to (``EcrDrift`` in ``template.yaml``)."""
