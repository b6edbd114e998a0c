"""One Region's records as the status store holds them (issue 14: one status item per Region).

* :class:`RegionStatus` - the Region's rule statuses, ownership, stamp and event forwarder record;
* :class:`RegionState` - one read of a Region's records, its applied fingerprints with them.

Apart from :mod:`ecrcache.models.status` so that importing the statuses (every handler reporting one) does not
import the observed-ECR models and, through them, the rule models (tests/contract/test_cold_start_imports.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from ecrcache.models.observed import AppliedFingerprints, Ownership
from ecrcache.models.shards import FanoutMarker
from ecrcache.models.status import ForwarderStatus, RegionStamp, RuleStatus

__all__ = ["RegionState", "RegionStatus"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionStatus(_Frozen):
    """What the store holds for one Region: its rules' statuses (upstream health and the Region's stamp
    put back), what ecrcache owns there, the item's ``version`` (0: none yet; a status write is conditioned
    on the version read) and the last run's stamp."""

    region: str
    statuses: Mapping[str, RuleStatus] = Field(default_factory=dict)
    ownership: Ownership = Ownership()
    version: int = 0
    stamp: RegionStamp | None = None
    forwarder: ForwarderStatus | None = None
    """The Region's event forwarder record (its ``fwd`` attribute): present while one may exist there, so the
    Region keeps being reconciled until it is gone (:mod:`ecrcache.services.forwarders`)."""
    fanout: FanoutMarker | None = None
    """The Region's unfinished deep-resync fan-out (its ``fan`` attribute), if any: the run whose shards are out."""
    digest: str | None = None
    """The Region's quiet digest (its ``qd`` attribute, :mod:`ecrcache.engine.quiet`): recorded by a run that found
    the Region quiet, removed by any write of its applied fingerprints (``None``: none recorded)."""
    generation: int = 0
    """How many times the Region's applied fingerprints were written (its ``ag`` attribute, moved before and after
    each write): a digest is recorded only if no write came between the read its plan was made from and the record."""
    migrated: bool = True
    """False until the store's former layout has been migrated (for every Region at once): the statuses and
    ownership were then read from both layouts, merged (the current one wins)."""


class RegionState(_Frozen):
    """One read of a Region's records: its :class:`RegionStatus`, the applied fingerprints of its repositories
    and, read with the stack Region's, the other Regions' statuses (their items share its partition)."""

    status: RegionStatus
    applied: Mapping[str, AppliedFingerprints] = Field(default_factory=dict)
    others: Mapping[str, RegionStatus] = Field(default_factory=dict)
    applied_read: bool = True
    """False when the read left the applied fingerprints out (:attr:`applied` is then empty, not "none recorded")."""
