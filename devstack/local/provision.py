"""Create the stack's resources in the embedded AWS, from ``template.yaml``.

What ``sam deploy`` creates, the local stack creates in the embedded AWS, read from the same
template (:data:`CREATED`): DynamoDB tables (keys, indexes, stream, TTL), SQS queues (visibility
timeout, retention, delay, redrive policy to a dead-letter queue), SNS topics (``TopicName``, inline
subscriptions; ``Ref`` is the ARN, so the alerts the functions publish land there), EventBridge rules with SQS targets
(``AWS::Events::Rule``: pattern, state, bus; the embedded EventBridge then puts matching events on
the queues, where an ``SQS`` event of a function picks them up), IAM roles (a role per function, its
policies from the template; the function host runs with credentials of that role, so its calls
carry the role's identity -- the reconciler recognises its own CloudTrail events by it -- and SAM's
implicit ``<Function>Role`` resolves to it) and a CloudFormation stack record with the template's
outputs the local stack can answer (``ApiUrl``, ``StateTableName``, ``StateTableStreamArn``,
``ReconcilerDlqUrl``, ``AlertTopicArn``, ``EventForwardRuleName``), so ``ecrcache --stack`` works against
the embedded AWS too. The rules and queues of functions' ``EventBridgeRule`` events belong to the event runner,
the routes to the gateway.

Resources the local stack has no use for (:data:`PLACEHOLDERS`: log groups, the layer, alarms,
queue policies, API Gateway's account settings) are recorded as placeholders; a reference to one of
their attributes is an error that names it. A resource whose ``Condition`` is false is not created,
as in CloudFormation. Any other resource type is refused with :class:`TemplateError`, so a resource
added to the template cannot silently do nothing locally (a contract test checks the template).

Where the local resources differ: queue policies are not enforced (the embedded EventBridge delivers
to any queue), ``RedriveAllowPolicy``, SSE and FIFO attributes of queues are not set, and a rule
target's ``RetryPolicy``/``DeadLetterConfig``/``RoleArn`` change nothing (delivery to the embedded SQS
does not fail). A scheduled rule, a non-SQS target and ``Input``/``InputPath``/``InputTransformer``
on a target are refused (not reproduced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config

from devstack.local.template import (
    RULE_STATES,
    SERVERLESS_FUNCTION,
    FunctionSpec,
    PhysicalResource,
    Resolver,
    TemplateError,
    function_properties,
    implicit_roles,
    resolve_functions,
)

__all__ = ["CREATED", "PLACEHOLDERS", "LocalStack", "provision", "table_definition"]

CREATED: Final[Mapping[str, str]] = {
    "AWS::DynamoDB::Table": "a table (keys, indexes, stream, TTL)",
    "AWS::SQS::Queue": "a queue (visibility timeout, retention, delay, redrive policy)",
    "AWS::Events::Rule": "an EventBridge rule with its SQS targets",
    "AWS::SNS::Topic": "a topic (name, display name, its inline subscriptions); Ref is its ARN",
    SERVERLESS_FUNCTION: "a role with the function's policies; the function runs in a function host",
    "AWS::IAM::Role": "a role with its trust policy (the roles EventBridge or API Gateway assume); Ref is its name",
}
"""Resource types the local stack creates in the embedded AWS."""
PLACEHOLDERS: Final[Mapping[str, str]] = {
    "AWS::Serverless::Api": "served by the local API gateway",
    "AWS::Serverless::LayerVersion": "the ecrcache library is installed in the local environment",
    "AWS::Logs::LogGroup": "function and API logs go to the console",
    "AWS::CloudWatch::Alarm": "no CloudWatch alarms locally",
    "AWS::CloudWatch::Dashboard": "no CloudWatch dashboards locally",
    "AWS::SQS::QueuePolicy": "not enforced: the embedded EventBridge delivers to any queue",
    "AWS::ApiGateway::Account": "API Gateway's account-wide logging setting",
    "AWS::Lambda::EventSourceMapping": "an SQS or DynamoDB stream event source of its function: the event runner "
    "polls the queue or stream (read as the function's SQS or DynamoDB event, devstack.local.template.mapped_events)",
    "AWS::Lambda::Permission": "the local stack invokes functions directly (Secrets Manager's: the supervisor "
    "registers the function with the embedded Secrets Manager)",
}
"""Resource types recorded as placeholders (nothing to create locally), with the reason."""


_LAMBDA_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
_OUTPUTS: Final = (
    "ApiUrl",
    "StateTableName",
    "StateTableStreamArn",
    "ReconcilerDlqUrl",
    "AlertTopicArn",
    "EventForwardRuleName",
)


@dataclass
class LocalStack:
    """The provisioned stack: names, resources, resolved functions and each function's credentials."""

    name: str
    region: str
    account_id: str
    endpoint_url: str
    resources: dict[str, PhysicalResource]
    functions: dict[str, FunctionSpec]
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


def _client(service: str, endpoint_url: str, region: str) -> Any:
    factory: Any = boto3.client  # the service name is a variable: no typed overload applies
    return factory(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="ecrcache-local",
        aws_secret_access_key="ecrcache-local",  # noqa: S106 - the embedded AWS accepts any key
        config=Config(retries={"mode": "standard", "max_attempts": 5}, account_id_endpoint_mode="disabled"),
    )


def table_definition(props: Mapping[str, Any]) -> dict[str, Any]:
    """``dynamodb.create_table`` arguments (all but ``TableName``) of an ``AWS::DynamoDB::Table``'s properties.

    KeySchema, AttributeDefinitions, BillingMode, GlobalSecondaryIndexes and StreamSpecification,
    translated where CloudFormation and the DynamoDB API differ (``StreamEnabled``).
    """
    definition: dict[str, Any] = {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if definition["BillingMode"] == "PROVISIONED":
        definition["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in props["GlobalSecondaryIndexes"]
        ]
    if "StreamSpecification" in props:
        definition["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    return definition


def _table(client: Any, name: str, props: Mapping[str, Any]) -> PhysicalResource:
    definition = {"TableName": name, **table_definition(props)}
    description = client.create_table(**definition)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    attributes = {"Arn": str(description["TableArn"])}
    if description.get("LatestStreamArn"):
        attributes["StreamArn"] = str(description["LatestStreamArn"])
    return PhysicalResource(ref=name, attributes=attributes)


_QUEUE_ATTRIBUTES: Final = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
)


def _queue(client: Any, name: str, props: Mapping[str, Any]) -> PhysicalResource:
    """A queue with the template's attributes (``props`` resolved); its redrive policy comes later."""
    attributes = {key: str(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    url = str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    arn = str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    return PhysicalResource(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})


def _redrive(client: Any, logical_id: str, url: str, policy: Any) -> None:
    """``RedrivePolicy`` (CloudFormation: an object) set once every queue exists (it names the DLQ's ARN).

    The embedded SQS (moto) moves a message to the dead-letter queue on the receive after its
    ``maxReceiveCount``-th, as SQS does.
    """
    document = json.loads(policy) if isinstance(policy, str) else policy
    if not isinstance(document, Mapping) or "deadLetterTargetArn" not in document or "maxReceiveCount" not in document:
        raise TemplateError(f"{logical_id}: RedrivePolicy needs deadLetterTargetArn and maxReceiveCount")
    client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(dict(document))})


_TOPIC_ATTRIBUTES: Final = ("DisplayName", "FifoTopic", "ContentBasedDeduplication")


def _topic(client: Any, logical_id: str, name: str, props: Mapping[str, Any]) -> PhysicalResource:
    """An ``AWS::SNS::Topic`` (``props`` resolved) and its inline ``Subscription`` list.

    As in CloudFormation, ``Ref`` is the topic's ARN and ``GetAtt`` gives ``TopicArn`` and ``TopicName``
    (AWS::SNS::Topic "Return values"). A subscription behind a false condition (``!If [Cond, [...],
    !Ref AWS::NoValue]``) was removed by the resolver, so it is not created. An e-mail subscription
    stays pending in the embedded SNS: nothing is mailed.
    """
    attributes = {key: json.dumps(props[key]) if isinstance(props[key], bool) else str(props[key])
                  for key in _TOPIC_ATTRIBUTES if key in props}  # fmt: skip
    arn = str(client.create_topic(Name=name, Attributes=attributes)["TopicArn"])
    for subscription in props.get("Subscription") or []:
        if not isinstance(subscription, Mapping) or not (subscription.get("Protocol") and subscription.get("Endpoint")):
            raise TemplateError(f"{logical_id}: every Subscription needs a Protocol and an Endpoint")
        client.subscribe(TopicArn=arn, Protocol=str(subscription["Protocol"]), Endpoint=str(subscription["Endpoint"]))
    return PhysicalResource(ref=arn, attributes={"TopicArn": arn, "TopicName": name})


def _rule_target(logical_id: str, target: Any) -> dict[str, Any]:
    if not isinstance(target, Mapping) or not target.get("Id") or not target.get("Arn"):
        raise TemplateError(f"{logical_id}: every target needs an Id and an Arn")
    arn = str(target["Arn"])
    if arn.split(":")[2:3] != ["sqs"]:
        raise TemplateError(f"{logical_id}: target {target['Id']} ({arn}): locally only SQS targets are delivered")
    unsupported = sorted({"Input", "InputTransformer"} & set(target))
    if target.get("InputPath") not in {None, "$"}:
        unsupported.append("InputPath")
    if unsupported:
        raise TemplateError(f"{logical_id}: target {target['Id']}: {', '.join(unsupported)} not reproduced locally")
    result: dict[str, Any] = {"Id": str(target["Id"]), "Arn": arn}
    if isinstance(target.get("SqsParameters"), Mapping):
        result["SqsParameters"] = dict(target["SqsParameters"])
    return result


def _rule(client: Any, logical_id: str, name: str, props: Mapping[str, Any]) -> PhysicalResource:
    """An ``AWS::Events::Rule`` (``props`` resolved): its pattern, state and SQS targets."""
    if "ScheduleExpression" in props:
        raise TemplateError(f"{logical_id}: a scheduled rule never fires locally; use a function's Schedule event")
    pattern = props.get("EventPattern")
    if not pattern:
        raise TemplateError(f"{logical_id}: an EventPattern is required")
    state = str(props.get("State", "ENABLED"))
    if state not in RULE_STATES:
        raise TemplateError(f"{logical_id}: State must be one of {', '.join(RULE_STATES)}, not {state!r}")
    targets = [_rule_target(logical_id, t) for t in props.get("Targets") or []]
    bus = str(props.get("EventBusName") or "default")
    arn = client.put_rule(
        Name=name,
        EventPattern=pattern if isinstance(pattern, str) else json.dumps(pattern),
        State=state,
        EventBusName=bus,
        Description=str(props.get("Description") or f"ecrcache local: {logical_id}"),
    )["RuleArn"]
    if targets:
        client.put_targets(Rule=name, EventBusName=bus, Targets=targets)
    return PhysicalResource(ref=name, attributes={"Arn": str(arn)})


class _Provisioner:
    """One run of :func:`provision`: the clients, the resources made so far and the resolver over them."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        endpoint_url: str,
        stack_name: str,
        region: str,
        account_id: str,
        parameters: Mapping[str, str] | None,
    ) -> None:
        self.template = template
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.endpoint_url = endpoint_url
        self.resources: dict[str, PhysicalResource] = {}
        self.roles: dict[str, str] = {}  # function logical id -> role ARN
        self.implicit_roles = {function: role for role, function in implicit_roles(template).items()}
        self._clients: dict[str, Any] = {}
        # The resolver reads self.resources as it fills: a reference to a resource made earlier resolves.
        self.resolver = Resolver(
            template,
            self.resources,
            pseudo={
                "AWS::Region": region,
                "AWS::AccountId": account_id,
                "AWS::StackName": stack_name,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
            parameters=parameters,
        )

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = _client(service, self.endpoint_url, self.region)
        return self._clients[service]

    def physical(self, logical_id: str, limit: int) -> str:
        return f"{self.stack_name}-{logical_id}"[:limit]

    def create(self) -> None:
        """Every resource whose condition holds, in three passes: references resolve to what exists."""
        resources = {
            logical_id: resource
            for logical_id, resource in self.template.get("Resources", {}).items()
            if "Condition" not in resource or self.resolver.condition(str(resource["Condition"]))
        }
        for logical_id, resource in resources.items():
            kind = str(resource.get("Type"))
            if kind not in CREATED and kind not in PLACEHOLDERS:
                raise TemplateError(f"{logical_id}: resource type {kind} is not reproduced by the local stack")
            if kind == "AWS::Events::Rule":
                continue  # last: its pattern and targets name roles and queues
            self.resources[logical_id] = self.first_pass(logical_id, kind, resource.get("Properties") or {})
        for logical_id, resource in resources.items():  # every queue exists: dead-letter targets resolve
            redrive = (resource.get("Properties") or {}).get("RedrivePolicy")
            if resource.get("Type") == "AWS::SQS::Queue" and redrive:
                url = self.resources[logical_id].ref
                _redrive(self.client("sqs"), logical_id, url, self.resolver.resolve(redrive))
        for logical_id, resource in resources.items():
            if resource.get("Type") == "AWS::Events::Rule":
                props = self.resolver.resolve(resource.get("Properties") or {})
                name = str(props.get("Name") or self.physical(logical_id, 64))
                self.resources[logical_id] = _rule(self.client("events"), logical_id, name, props)

    def first_pass(self, logical_id: str, kind: str, props: Mapping[str, Any]) -> PhysicalResource:
        if kind == "AWS::DynamoDB::Table":
            return _table(self.client("dynamodb"), str(props.get("TableName") or self.physical(logical_id, 255)), props)
        if kind == "AWS::SQS::Queue":
            attributes = self.resolver.resolve({k: v for k, v in props.items() if k in _QUEUE_ATTRIBUTES})
            name = str(self.resolver.resolve(props.get("QueueName") or self.physical(logical_id, 80)))
            return _queue(self.client("sqs"), name, attributes)
        if kind == "AWS::SNS::Topic":
            resolved = self.resolver.resolve(props)
            name = str(resolved.get("TopicName") or self.physical(logical_id, 256))
            return _topic(self.client("sns"), logical_id, name, resolved)
        if kind == SERVERLESS_FUNCTION:
            return self.function(logical_id)
        if kind == "AWS::IAM::Role":
            return self.role(logical_id, self.resolver.resolve(props))
        return PhysicalResource(ref=self.physical(logical_id, 255))

    def role(self, logical_id: str, props: Mapping[str, Any]) -> PhysicalResource:
        """A role with its trust policy (its permissions are not enforced locally); ``GetAtt`` gives ``Arn``."""
        name = str(props.get("RoleName") or self.physical(logical_id, 64))
        trust = props.get("AssumeRolePolicyDocument") or _LAMBDA_TRUST
        role = self.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=trust if isinstance(trust, str) else json.dumps(trust)
        )["Role"]
        return PhysicalResource(
            ref=str(role["RoleName"]), attributes={"Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])}
        )

    def function(self, logical_id: str) -> PhysicalResource:
        """The function's execution role (also SAM's implicit ``<Function>Role``) and its ARN."""
        physical = self.physical(logical_id, 64)
        role = self.client("iam").create_role(
            RoleName=f"{physical}-role"[:64], AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST)
        )["Role"]
        self.roles[logical_id] = str(role["Arn"])
        if logical_id in self.implicit_roles:
            self.resources[self.implicit_roles[logical_id]] = PhysicalResource(
                ref=str(role["RoleName"]), attributes={"Arn": str(role["Arn"]), "RoleId": str(role["RoleId"])}
            )
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{physical}"
        return PhysicalResource(ref=physical, attributes={"Arn": arn})

    def credentials(self) -> dict[str, dict[str, str]]:
        """Each function role's policies from the template, and credentials of a session of it."""
        properties = function_properties(self.template)
        credentials: dict[str, dict[str, str]] = {}
        for logical_id, role_arn in self.roles.items():
            role_name = role_arn.rsplit("/", 1)[-1]
            for index, policy in enumerate(properties[logical_id].get("Policies", [])):
                if isinstance(policy, dict):
                    self.client("iam").put_role_policy(
                        RoleName=role_name,
                        PolicyName=f"policy-{index}",
                        PolicyDocument=json.dumps(self.resolver.resolve(policy)),
                    )
            session = self.resources[logical_id].ref
            assumed = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=43200)
            creds = assumed["Credentials"]
            credentials[logical_id] = {
                "AWS_ACCESS_KEY_ID": str(creds["AccessKeyId"]),
                "AWS_SECRET_ACCESS_KEY": str(creds["SecretAccessKey"]),
                "AWS_SESSION_TOKEN": str(creds["SessionToken"]),
            }
        return credentials


def provision(
    template: Mapping[str, Any],
    *,
    root: Path,
    endpoint_url: str,
    stack_name: str,
    region: str,
    account_id: str,
    api_url: str,
    parameters: Mapping[str, str] | None = None,
) -> LocalStack:
    """Create the template's resources in the embedded AWS at ``endpoint_url`` and resolve its functions."""
    run = _Provisioner(
        template,
        endpoint_url=endpoint_url,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        parameters=parameters,
    )
    run.create()
    functions = resolve_functions(template, run.resolver, root)
    credentials = run.credentials()
    outputs = _outputs(template, run.resolver, api_url)
    _record_stack(run.client("cloudformation"), stack_name, outputs)
    return LocalStack(
        name=stack_name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        resources=run.resources,
        functions=functions,
        credentials=credentials,
        outputs=outputs,
    )


def _outputs(template: Mapping[str, Any], resolver: Resolver, api_url: str) -> dict[str, str]:
    outputs: dict[str, str] = {}
    declared = template.get("Outputs", {})
    for name in _OUTPUTS:
        if name not in declared:
            continue
        if name == "ApiUrl":
            outputs[name] = api_url
            continue
        try:
            outputs[name] = str(resolver.resolve(declared[name]["Value"]))
        except TemplateError:
            continue
    return outputs


def _record_stack(cloudformation: Any, stack_name: str, outputs: Mapping[str, str]) -> None:
    """A CloudFormation stack whose outputs are the local stack's (for ``ecrcache --stack``)."""
    body = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "ecrcache local stack (outputs only; the resources are created by ecrcache local)",
        "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=stack_name, TemplateBody=json.dumps(body))
