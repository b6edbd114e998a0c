"""Every AWS call a function's code can make is allowed by that function's IAM policy (and no more).

The calls are read from the adapters the function wires in (``self.client.<operation>(`` and
paginators), so a new call without a template change fails here rather than in production.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.template import functions

pytestmark = pytest.mark.contract

ADAPTERS = ROOT / "layers" / "core" / "ecrcache" / "adapters"
# Which AWS service each adapter talks to.
ADAPTER_SERVICE = {
    "dynamodb_store": "dynamodb",
    "secrets_store": "secretsmanager",
    "secret_replication": "secretsmanager",
    "status_store": "dynamodb",
    "ecr_registry": "ecr",
    "pull_stats_store": "dynamodb",
    "pull_compaction_store": "dynamodb",
    "warm_store": "dynamodb",
    "upstream_budget": "dynamodb",
    "warm_queue": "sqs",
    "shard_queue": "sqs",
    "upstream_registry": "secretsmanager",
    "ecr_warm": "ecr",
    "secret_rotation": "secretsmanager",
    "rotation_store": "dynamodb",
    "rotation_start": "secretsmanager",
    "rotation_schedule": "secretsmanager",
    "credential_health_store": "dynamodb",
    "health_events": "events",
    "state_events": "events",
    "alert_topic": "sns",
    "event_forwarder": "events",
}
# Operations whose IAM actions differ from their names.
SPECIAL = {
    ("dynamodb", "TransactWriteItems"): {"PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"},
    ("dynamodb", "TransactGetItems"): {"GetItem"},
    # Tags on CreateSecret are authorised as TagResource too.
    ("secretsmanager", "CreateSecret"): {"CreateSecret", "TagResource"},
    # SendMessageBatch is authorised as SendMessage (SQS API reference, SendMessageBatch).
    ("sqs", "SendMessageBatch"): {"SendMessage"},
    # Service Authorization Reference, "API operations defined by Amazon ECR": a pull through the cache
    # is also authorised as the import from the upstream, the repository's creation (first pull) and
    # its tagging (a creation template's resource tags); a layer URL as the layer's import.
    ("ecr", "BatchGetImage"): {"BatchGetImage", "BatchImportUpstreamImage", "CreateRepository", "TagResource"},
    ("ecr", "GetDownloadUrlForLayer"): {"GetDownloadUrlForLayer", "BatchImportUpstreamImage"},
    # Service Authorization Reference, Amazon ECR: Create/UpdateRepositoryCreationTemplate list the dependent
    # actions ecr:CreateRepository, ecr:PutLifecyclePolicy, ecr:SetRepositoryPolicy (ECR User Guide, "Creating a
    # repository creation template": the last two when the template carries a lifecycle / repository policy), plus
    # iam:CreateServiceLinkedRole and iam:PassRole (test_template_scoping.py checks those).
    ("ecr", "CreateRepositoryCreationTemplate"): {
        "CreateRepositoryCreationTemplate",
        "CreateRepository",
        "PutLifecyclePolicy",
        "SetRepositoryPolicy",
    },
    ("ecr", "UpdateRepositoryCreationTemplate"): {
        "UpdateRepositoryCreationTemplate",
        "CreateRepository",
        "PutLifecyclePolicy",
        "SetRepositoryPolicy",
    },
}


# IAM authorises each action of a TransactWriteItems by its own kind (Service Authorization Reference:
# "TransactWriteItems" is no IAM action). Adapters listed here send only the kinds written in their
# source as ``"Put": {``, ``"Update": {``, ``"Delete": {``, ``"ConditionCheck": {``; the others keep SPECIAL.
PRECISE_TRANSACTIONS = frozenset({"warm_store"})
_TRANSACTION_KINDS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def transaction_actions(module: str) -> set[str]:
    source = (ADAPTERS / f"{module}.py").read_text()
    return {action for kind, action in _TRANSACTION_KINDS.items() if f'"{kind}": {{' in source}


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


# The state table's shared helpers (adapters/dynamodb_codec.py) make the call on the client an adapter
# passes them: ``batch_write(self.client, ...)`` is that adapter's BatchWriteItem.
SHARED_HELPERS = {"batch_write": "batch_write_item", "batch_get": "batch_get_item", "query_partition": "query"}


def mixins(module: str) -> set[str]:
    """The adapter modules whose classes ``module``'s classes inherit from (mixed in: their ``self.client`` calls
    are ``module``'s), transitively -- e.g. the shard records (:mod:`ecrcache.adapters.shard_records`) mixed into
    the status store."""
    tree = ast.parse((ADAPTERS / f"{module}.py").read_text())
    origin = {
        alias.asname or alias.name: node.module.rsplit(".", 1)[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ecrcache.adapters.")
        for alias in node.names
    }
    found = {
        origin[base.id]
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
        if isinstance(base, ast.Name) and base.id in origin
    }
    return found | {deeper for mixed in found for deeper in mixins(mixed)}


def adapter_operations(module: str) -> set[str]:
    """The operations ``module`` calls on its client, its mixins' included."""
    return set().union(*(_own_operations(m) for m in {module, *mixins(module)}))


def _own_operations(module: str) -> set[str]:
    source = (ADAPTERS / f"{module}.py").read_text()
    calls = set(re.findall(r"self\.client\.([a-z_]+)\(", source))
    calls |= set(re.findall(r"get_paginator\(\"([a-z_]+)\"\)", source))
    calls |= {SHARED_HELPERS[h] for h in re.findall(r"\b([a-z_]+)\(\s*self\.client\b", source) if h in SHARED_HELPERS}
    calls.discard("get_paginator")
    return {_pascal(c) for c in calls}


def wired_adapters(function: dict[str, Any]) -> set[str]:
    app = ROOT / function["CodeUri"] / "app.py"
    tree = ast.parse(app.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ecrcache.adapters."):
            found.add(node.module.rsplit(".", 1)[1])
    return found & set(ADAPTER_SERVICE)


def allowed_actions(function: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for policy in function.get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement.get("Effect") == "Allow":
                value = statement["Action"]
                actions |= set([value] if isinstance(value, str) else value)
    return actions


# Powertools idempotency keeps its records in the state table with these calls.
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def uses_idempotency(function: dict[str, Any]) -> bool:
    return "DynamoDBPersistenceLayer" in (ROOT / function["CodeUri"] / "app.py").read_text()


# Functions that use an adapter only to read (the API plans; it never applies): only the adapter's
# read operations (its READ_OPERATIONS constant, minus ValidatePullThroughCacheRule) are allowed.
READ_ONLY_ADAPTERS = {"ApiFunction": {"ecr_registry", "pull_stats_store", "secret_replication", "event_forwarder"}}
# Functions that use a few operations of a wired adapter, no more: the rotator reads the credential's desired
# spec and the desired rules naming it (DynamoDbStateStore.get / snapshot) and lists and validates the ECR rules
# using the secret -- its service types ECR as ecrcache.ports.EcrRuleChecker (rules() and validate_rule() only).
# The health check reads the secret (SecretsManagerRotation typed as ecrcache.ports.CredentialSecrets: describe and
# current_value only) and, like the rotator, the desired state and ECR's rules; the pull statistics and the warm
# worker only mark credentials Invalid (CredentialMarks: mark_invalid and record_announced, both UpdateItem); the
# rotator records its outcomes on the health (RotationHealth: record_rotated, mark_invalid, record_announced).
WORKER_ECR_OPERATIONS: frozenset[str] = frozenset(
    {
        "DescribeRepositories",
        "GetLifecyclePolicy",
        "PutLifecyclePolicy",
        "DeleteLifecyclePolicy",
        "GetRepositoryPolicy",
        "SetRepositoryPolicy",
        "DeleteRepositoryPolicy",
        "ListTagsForResource",
        "TagResource",
        "UntagResource",
        "PutImageTagMutability",
    }
)
CALLED_ONLY: dict[str, dict[str, set[str] | frozenset[str]]] = {
    "RotatorFunction": {
        "dynamodb_store": {"GetItem", "Query"},
        "ecr_registry": {"DescribePullThroughCacheRules", "ValidatePullThroughCacheRule"},
        "credential_health_store": {"UpdateItem"},
    },
    "CredentialHealthFunction": {
        "dynamodb_store": {"GetItem", "Query"},
        "ecr_registry": {"DescribePullThroughCacheRules", "ValidatePullThroughCacheRule"},
        "secret_rotation": {"DescribeSecret", "GetSecretValue"},
    },
    "PullStatsFunction": {"credential_health_store": {"UpdateItem"}},
    "WarmWorkerFunction": {"credential_health_store": {"UpdateItem"}},
    # The reconcile worker converges its shard's repositories only: the ECR adapter's per-repository reads (the
    # shard's DescribeRepositories by name and the three deep reads) and writes; the registry-level rules,
    # templates and exclusions are the coordinator's (the reconciler's) alone.
    "ReconcileWorkerFunction": {"ecr_registry": WORKER_ECR_OPERATIONS},
}
# Operations of a wired adapter that a function never calls: the worker records outcomes and freshness
# in the warm run store; only the planner creates runs (create_run, the store's only BatchWriteItem).
# The reconciler reads applied fingerprints by partition (Query); only the reconcile worker reads a shard's by key
# (ShardRecords.applied_of, the status store's only BatchGetItem).
NOT_CALLED = {
    "WarmWorkerFunction": {("warm_store", "BatchWriteItem")},
    "ReconcilerFunction": {("status_store", "BatchGetItem")},
}


def _read_operations(module: str) -> set[str]:
    source = (ADAPTERS / f"{module}.py").read_text()
    block = source.split("READ_OPERATIONS: Final = frozenset(", 1)[1].split(")", 1)[0]
    return set(re.findall(r'"([A-Za-z]+)"', block)) - {"ValidatePullThroughCacheRule"}


def required_actions(function: dict[str, Any], logical_id: str = "") -> set[str]:
    needed: set[str] = set(IDEMPOTENCY_ACTIONS) if uses_idempotency(function) else set()
    for module in wired_adapters(function):
        service = ADAPTER_SERVICE[module]
        operations = adapter_operations(module)
        if module in READ_ONLY_ADAPTERS.get(logical_id, set()):
            operations &= _read_operations(module)
        operations -= {operation for m, operation in NOT_CALLED.get(logical_id, set()) if m == module}
        if module in CALLED_ONLY.get(logical_id, {}):
            operations &= CALLED_ONLY[logical_id][module]
        for operation in operations:
            actions = SPECIAL.get((service, operation), {operation})
            if operation == "TransactWriteItems" and module in PRECISE_TRANSACTIONS:
                actions = transaction_actions(module)
            for action in actions:
                needed.add(f"{service}:{action}")
    return needed


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_iam_policy_allows_every_call_the_code_makes(logical_id: str) -> None:
    # GIVEN a function, the adapters its app.py wires in, and the operations those adapters call
    function = functions()[logical_id]
    needed = required_actions(function, logical_id)
    # THEN its policy allows each one
    missing = needed - allowed_actions(function)
    assert not missing, f"{logical_id} calls AWS operations its policy does not allow: {sorted(missing)}"


# What Lambda's event source mapping does with the function's role, not its code: a DynamoDB stream mapping
# reads the stream (Lambda Developer Guide, "Using Lambda with DynamoDB": execution role permissions; the
# template's stream mappings stand for SAM DynamoDB events, tests/contract/test_stream_event_sources.py).
EVENT_SOURCE_ACTIONS = {
    "DynamoDB": {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"},
    # ... and an SQS mapping receives and deletes (Lambda Developer Guide, "Using Lambda with Amazon SQS": execution
    # role permissions; tests/contract/test_sqs_event_sources.py checks each on its own queue only).
    "SQS": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
}


def event_source_actions(function: dict[str, Any]) -> set[str]:
    return {
        action
        for event in (function.get("Events") or {}).values()
        for action in EVENT_SOURCE_ACTIONS.get(str(event.get("Type")), set())
    }


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_iam_policy_allows_nothing_the_code_does_not_call(logical_id: str) -> None:
    # GIVEN the same function THEN every allowed action of a wired service is one the code uses (or its event
    # source mappings do)
    function = functions()[logical_id]
    services = {ADAPTER_SERVICE[m] for m in wired_adapters(function)}
    needed = required_actions(function, logical_id) | event_source_actions(function)
    extra = {a for a in allowed_actions(function) - needed if a.split(":")[0] in services}
    assert not extra, f"{logical_id} is allowed more than it calls: {sorted(extra)}"


def test_adapter_scan_finds_the_known_calls() -> None:
    # The scan itself must see real calls (so the tests above cannot pass vacuously).
    assert {"TransactWriteItems", "Query", "GetItem"} <= adapter_operations("dynamodb_store")
    assert adapter_operations("pull_stats_store") == {"PutItem", "BatchGetItem", "Query"}
    assert adapter_operations("pull_compaction_store") == {"GetItem", "UpdateItem", "BatchGetItem", "BatchWriteItem"}
    assert transaction_actions("warm_store") == {"PutItem", "UpdateItem", "ConditionCheckItem"}
    assert {"BatchGetItem", "BatchWriteItem", "Query"} <= adapter_operations("warm_store")
    assert {"BatchWriteItem", "Query"} <= adapter_operations("status_store")
    assert adapter_operations("credential_health_store") == {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"}
    assert adapter_operations("health_events") == {"PutEvents"}
    assert adapter_operations("state_events") == {"PutEvents"}
    assert adapter_operations("alert_topic") == {"Publish"}


def test_the_mixed_in_shard_records_are_scanned_and_the_reconcile_worker_may_make_their_calls() -> None:
    # The reconcile worker reads a shard's applied fingerprints with BatchGetItem (ShardRecords.applied_of, mixed
    # into the status store): its policy once lacked the action, and this scan never read the mixin.
    assert mixins("status_store") == {"shard_records", "applied_records"}
    assert (
        {"BatchGetItem", "TransactWriteItems"}
        <= adapter_operations("shard_records")
        <= (adapter_operations("status_store"))
    )
    # AND only the worker's service reads them so (the reconciler's NOT_CALLED entry stays true)
    services = ROOT / "layers" / "core" / "ecrcache" / "services"
    assert {p.name for p in services.glob("*.py") if ".applied_of(" in p.read_text()} == {"reconcile_shards.py"}
    assert "ShardWorkerService" not in (ROOT / "functions" / "reconciler" / "app.py").read_text()
    worker = functions()["ReconcileWorkerFunction"]
    assert "dynamodb:BatchGetItem" in required_actions(worker, "ReconcileWorkerFunction")
    assert "dynamodb:BatchGetItem" in allowed_actions(worker)


def test_the_mixed_in_applied_records_are_scanned_and_every_status_store_user_may_make_their_calls() -> None:
    # The applied fingerprints and the quiet digest (AppliedRecords, mixed into the status store): a Query of the
    # Region's fingerprints, their batch writes, and the UpdateItems that record or drop the digest.
    assert {"Query", "BatchWriteItem", "UpdateItem"} == adapter_operations("applied_records")
    assert adapter_operations("applied_records") <= adapter_operations("status_store")
    for name in ("ReconcilerFunction", "ReconcileWorkerFunction"):
        function = functions()[name]
        assert {f"dynamodb:{op}" for op in ("Query", "BatchWriteItem", "UpdateItem")} <= allowed_actions(function)


def test_every_adapter_calling_a_client_is_mapped_or_mixed_into_one() -> None:
    # A module of client calls that no mapped adapter mixes in would be scanned for no function.
    mixed = {m for module in ADAPTER_SERVICE for m in mixins(module)}
    calling = {p.stem for p in ADAPTERS.glob("*.py") if re.search(r"self\.client\.[a-z_]+\(", p.read_text())}
    assert calling <= set(ADAPTER_SERVICE) | mixed, sorted(calling - set(ADAPTER_SERVICE) - mixed)


def test_the_warm_worker_may_read_freshness_in_batches() -> None:
    # The worker's freshness check (WarmRunStore.verified) is a BatchGetItem: the local stack, which
    # enforces no IAM, warmed every image while this action was missing from the worker's policy.
    worker = functions()["WarmWorkerFunction"]
    assert "dynamodb:BatchGetItem" in required_actions(worker, "WarmWorkerFunction")
    assert "dynamodb:BatchGetItem" in allowed_actions(worker)
    assert {"CreateSecret", "PutSecretValue", "UpdateSecretVersionStage"} <= adapter_operations("secrets_store")
    assert {"BatchGetImage", "GetDownloadUrlForLayer", "DescribeImages", "UpdateImageStorageClass"} <= (
        adapter_operations("ecr_warm")
    )
    assert Path(ADAPTERS / "aws.py").exists()


def test_the_warmers_exclusion_calls_are_mapped_the_reconciler_writes_and_the_api_only_lists() -> None:
    # GIVEN the ECR adapter's pull-time update exclusion calls
    calls = {"ListPullTimeUpdateExclusions", "RegisterPullTimeUpdateExclusion", "DeregisterPullTimeUpdateExclusion"}
    assert calls <= adapter_operations("ecr_registry")
    # THEN the reconciler needs all three, the read-only API only the list (its plan shows the exclusion)
    reconciler = required_actions(functions()["ReconcilerFunction"], "ReconcilerFunction")
    api = required_actions(functions()["ApiFunction"], "ApiFunction")
    assert {f"ecr:{c}" for c in calls} <= reconciler
    assert {a for a in api if "PullTimeUpdateExclusion" in a} == {"ecr:ListPullTimeUpdateExclusions"}


def test_secret_replicas_are_made_by_the_reconciler_and_only_removed_by_the_api() -> None:
    # GIVEN the replication adapter's calls and the secret store's (a credential's delete removes replicas)
    replication = {"DescribeSecret", "ReplicateSecretToRegions", "RemoveRegionsFromReplication"}
    assert adapter_operations("secret_replication") == replication
    assert "RemoveRegionsFromReplication" in adapter_operations("secrets_store")
    # THEN the reconciler needs all three, the API (which plans, and deletes credentials) no replicate
    reconciler = required_actions(functions()["ReconcilerFunction"], "ReconcilerFunction")
    api = required_actions(functions()["ApiFunction"], "ApiFunction")
    assert {f"secretsmanager:{c}" for c in replication} <= reconciler
    assert "secretsmanager:RemoveRegionsFromReplication" in api
    assert "secretsmanager:ReplicateSecretToRegions" not in api


def test_secret_replica_grants_cover_every_region_and_only_the_credential_secrets() -> None:
    # Replicas live in other Regions under the same names: the grants name any Region, those names only.
    for logical_id in ("ReconcilerFunction", "ApiFunction"):
        statements = functions()[logical_id]["Policies"][0]["Statement"]
        [grant] = [s for s in statements if s.get("Sid") == "UpstreamCredentialSecretReplicas"]
        assert grant["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:*:${AWS::AccountId}:secret:ecr-pullthroughcache/*"
        }


def test_the_rotators_restricted_operations_are_real_calls_of_its_adapters() -> None:
    # GIVEN the operations the rotator is said to use of each adapter THEN each adapter makes them (no stale entry)
    for module, operations in CALLED_ONLY["RotatorFunction"].items():
        assert operations <= adapter_operations(module), module
    # AND the rotator needs its secret calls and no write to the desired state
    rotator = required_actions(functions()["RotatorFunction"], "RotatorFunction")
    assert {f"secretsmanager:{a}" for a in ("PutSecretValue", "UpdateSecretVersionStage")} <= rotator
    assert not {"dynamodb:PutItem", "dynamodb:DeleteItem", "ecr:CreatePullThroughCacheRule"} & rotator


def _invoke_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in function.get("Policies", [])
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
        if "lambda:InvokeFunction"
        in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]


@pytest.mark.parametrize("logical_id", sorted(functions()))
def test_a_function_calling_rotate_secret_may_invoke_the_rotation_function_and_no_other(logical_id: str) -> None:
    # RotateSecret: "You also need lambda:InvokeFunction permissions on the rotation function" (Secrets Manager API
    # reference). GIVEN a function and whether its code calls RotateSecret
    function = functions()[logical_id]
    rotates = "secretsmanager:RotateSecret" in required_actions(function, logical_id)
    invoke = _invoke_statements(function)
    # THEN it may invoke the rotation function exactly when it does, and nothing else
    if rotates:
        assert invoke, f"{logical_id} calls RotateSecret without lambda:InvokeFunction on the rotation function"
    assert all(s["Resource"] == {"Fn::GetAtt": ["RotatorFunction", "Arn"]} for s in invoke), invoke
    assert rotates or not invoke, f"{logical_id} may invoke the rotation function without calling RotateSecret"


def test_the_api_and_the_reconciler_call_rotate_secret() -> None:
    # The scan sees the calls (so the test above cannot pass vacuously).
    assert {"RotateSecret", "PutSecretValue", "UpdateSecretVersionStage"} <= adapter_operations("rotation_start")
    assert {"RotateSecret", "CancelRotateSecret"} <= adapter_operations("rotation_schedule")
    for logical_id in ("ApiFunction", "ReconcilerFunction"):
        assert "secretsmanager:RotateSecret" in required_actions(functions()[logical_id], logical_id)


def test_the_event_forwarders_are_written_by_the_reconciler_and_only_read_by_the_api() -> None:
    # GIVEN the EventBridge adapter of the forwarding rules
    calls = {"DescribeRule", "ListTargetsByRule", "PutRule", "PutTargets", "RemoveTargets", "DeleteRule"}
    assert adapter_operations("event_forwarder") == calls
    # THEN the reconciler needs every call, the plan only the reads
    reconciler = required_actions(functions()["ReconcilerFunction"], "ReconcilerFunction")
    api = required_actions(functions()["ApiFunction"], "ApiFunction")
    assert {f"events:{c}" for c in calls} <= reconciler
    assert {a for a in api if a.startswith("events:")} == {"events:DescribeRule", "events:ListTargetsByRule"}


def test_the_forwarding_rule_is_put_without_tags_and_the_reconciler_may_not_tag_it() -> None:
    # PutRule assigns tags only when it creates a rule (API reference): tags it cannot keep are not set, nor granted.
    from ecrcache.engine.forwarders import Forwarding

    settings = Forwarding(
        rule_name="ecrcache-fwd-x", role_arn="arn:aws:iam::1:role/r", home_region="a", ignored_roles=()
    )
    assert "Tags" not in settings.rule_request("b")
    for logical_id, function in functions().items():
        assert "events:TagResource" not in allowed_actions(function), logical_id


def test_the_event_forwarder_grants_name_the_stacks_forwarding_rule_in_every_region() -> None:
    # A forwarder lives in each Region a rule names, always under the stack-unique name the settings pass.
    expected = {
        "Fn::Sub": [
            "arn:${AWS::Partition}:events:*:${AWS::AccountId}:rule/ecrcache-fwd-${StackUuid}",
            {"StackUuid": {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}},
        ]
    }
    for logical_id, sid in (("ReconcilerFunction", "EventForwarders"), ("ApiFunction", "EventForwardersRead")):
        statements = functions()[logical_id]["Policies"][0]["Statement"]
        [grant] = [s for s in statements if s.get("Sid") == sid]
        assert grant["Resource"] == expected
        name = functions()[logical_id]["Environment"]["Variables"]["EVENT_FORWARD_RULE_NAME"]
        assert name == {"Fn::Sub": ["ecrcache-fwd-${StackUuid}", expected["Fn::Sub"][1]]}
