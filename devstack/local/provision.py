"""Create the stack's resources in the embedded AWS, from ``template.yaml``.

What ``sam deploy`` creates, the local stack creates in the embedded AWS, read from the same
template: DynamoDB tables (keys, indexes, stream, TTL), SQS queues, one IAM role per function (its
policies from the template; the function host runs with credentials of that role, so its calls
carry the role's identity — the reconciler recognises its own CloudTrail events by it) and a
CloudFormation stack record with the template's outputs the local stack can answer (``ApiUrl``,
``StateTableName``, ``StateTableStreamArn``, ``ReconcilerDlqUrl``), so ``ecrcache --stack`` works
against the embedded AWS too. EventBridge rules and their queues belong to the event runner, the
routes to the gateway.

Resources the local stack has no use for (log groups, the layer, alarms, API Gateway's account
settings) are recorded as placeholders; a reference to one of their attributes is an error that
names it.
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
    SERVERLESS_FUNCTION,
    FunctionSpec,
    PhysicalResource,
    Resolver,
    TemplateError,
    function_properties,
    resolve_functions,
)

__all__ = ["LocalStack", "provision", "table_definition"]

_LAMBDA_TRUST: Final = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
_OUTPUTS: Final = ("ApiUrl", "StateTableName", "StateTableStreamArn", "ReconcilerDlqUrl")


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


def _queue(client: Any, name: str, props: Mapping[str, Any]) -> PhysicalResource:
    attributes = {
        key: str(props[key]) for key in ("MessageRetentionPeriod", "VisibilityTimeout", "DelaySeconds") if key in props
    }
    url = str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    arn = str(client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    return PhysicalResource(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url})


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
    dynamodb = _client("dynamodb", endpoint_url, region)
    sqs = _client("sqs", endpoint_url, region)
    iam = _client("iam", endpoint_url, region)
    sts = _client("sts", endpoint_url, region)
    resources: dict[str, PhysicalResource] = {}
    pending_roles: dict[str, str] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        physical = f"{stack_name}-{logical_id}"
        if kind == "AWS::DynamoDB::Table":
            resources[logical_id] = _table(dynamodb, str(props.get("TableName") or physical), props)
        elif kind == "AWS::SQS::Queue":
            resources[logical_id] = _queue(sqs, physical, props)
        elif kind == SERVERLESS_FUNCTION:
            role = iam.create_role(RoleName=f"{physical}-role", AssumeRolePolicyDocument=json.dumps(_LAMBDA_TRUST))
            pending_roles[logical_id] = str(role["Role"]["Arn"])
            resources[logical_id] = PhysicalResource(
                ref=physical,
                attributes={"Arn": f"arn:aws:lambda:{region}:{account_id}:function:{physical}"},
            )
        else:
            resources[logical_id] = PhysicalResource(ref=physical)
    resolver = Resolver(
        template,
        resources,
        pseudo={
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        },
        parameters=parameters,
    )
    functions = resolve_functions(template, resolver, root)
    properties = function_properties(template)
    credentials: dict[str, dict[str, str]] = {}
    for logical_id, role_arn in pending_roles.items():
        role_name = role_arn.rsplit("/", 1)[-1]
        for index, policy in enumerate(properties[logical_id].get("Policies", [])):
            if isinstance(policy, dict):
                iam.put_role_policy(
                    RoleName=role_name,
                    PolicyName=f"policy-{index}",
                    PolicyDocument=json.dumps(resolver.resolve(policy)),
                )
        assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName=resources[logical_id].ref, DurationSeconds=43200)
        creds = assumed["Credentials"]
        credentials[logical_id] = {
            "AWS_ACCESS_KEY_ID": str(creds["AccessKeyId"]),
            "AWS_SECRET_ACCESS_KEY": str(creds["SecretAccessKey"]),
            "AWS_SESSION_TOKEN": str(creds["SessionToken"]),
        }
    outputs = _outputs(template, resolver, api_url)
    _record_stack(_client("cloudformation", endpoint_url, region), stack_name, outputs)
    return LocalStack(
        name=stack_name,
        region=region,
        account_id=account_id,
        endpoint_url=endpoint_url,
        resources=resources,
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
