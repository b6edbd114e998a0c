"""``make demo``'s credentials chapter: GHCR's token rotated (a wrong one refused, a new one promoted) and an
expiring credential alerted -- every claim checked against the embedded AWS, never a token printed.

1. ``ecrcache credentials rotate ghcr --token-stdin --wait`` with a token the ``ghcr.io`` stand-in refuses: exit 6,
   the rotation ``refused`` at ``testSecret``; the secret's ``AWSCURRENT`` is the version it was, with the good
   token (``GetSecretValue``), and no ``AWSPENDING`` is left (``DescribeSecret``);
2. the stand-in issues a new token (its token server, ``PUT <ghcr>/_ecrcache/users``; the old one is revoked) and
   the same command with it exits 0: ``promoted`` (tested at the stand-in, made current, validated in ECR), the
   secret's ``AWSCURRENT`` holds it, and a pull through the ``ghcr`` rule signs in with it;
3. ``expires_at`` three days ahead (``ecrcache credentials set ghcr --expires-at``), the daily health check run now
   (``ecrcache local fire CredentialHealthFunction``): the ``Credential Expiring`` event (threshold 7) reaches an
   EventBridge rule's queue on the default bus and the stack's alert topic (``AlertTopicArn``) a subscribed queue,
   and ``ecrcache credentials status ghcr`` shows ``Expiring``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import boto3
import requests
from botocore.config import Config

if TYPE_CHECKING:
    from devstack.local.demo import Demo

__all__ = ["CredentialsChapter"]

CREDENTIAL: Final = "ghcr"
SECRET: Final = "ecr-pullthroughcache/ghcr"  # noqa: S105 - the secret's name (ECR's required prefix)
WRONG_TOKEN: Final = "not-the-ghcr-token"  # noqa: S105 - a token the stand-in refuses
NEW_TOKEN: Final = "ghcr-demo-token-rotated"  # noqa: S105 - the stand-in's new demo token, issued at run time
GHCR_IMAGE: Final = ("ghcr/ecrcache/demo", "1.0")
EXPIRES_IN_DAYS: Final = 3
EXPECTED_THRESHOLD: Final = 7  # alerts at 14, 7, 1, 0 days: 3 days ahead is past 7, not yet 1
ALERT_QUEUE: Final = "ecrcache-demo-expiring"
TOPIC_QUEUE: Final = "ecrcache-demo-alert-topic"
MANIFEST_TYPES: Final = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


class CredentialsChapter:
    """The chapter's steps on ``demo``'s running local stack (its ``step``, ``show``, ``cli`` and ``wait_for``)."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.ghcr: dict[str, str] = demo.endpoints["ghcr"]

    def client(self, service: str) -> Any:
        factory: Any = boto3.client  # the service name is a variable: no typed overload applies
        return factory(
            service,
            endpoint_url=self.demo.endpoints["aws"],
            region_name=self.demo.endpoints.get("region", "us-east-1"),
            aws_access_key_id="demo-user",
            aws_secret_access_key="demo-user",  # noqa: S106 - the embedded AWS accepts any key
            config=Config(retries={"mode": "standard"}),
        )

    def run(self) -> None:
        self.wrong_token_refused()
        self.new_token_promoted()
        self.expiring_alerted()

    # ---- the secret, read through the AWS API (never shown) -----------------------------------------------

    def current(self) -> tuple[str, str]:
        """``AWSCURRENT``'s version id and token (the token for comparing only: never printed)."""
        read = self.client("secretsmanager").get_secret_value(SecretId=SECRET)
        return str(read["VersionId"]), str(json.loads(read["SecretString"])["accessToken"])

    def stages(self) -> dict[str, list[str]]:
        described = self.client("secretsmanager").describe_secret(SecretId=SECRET)
        return {version: sorted(labels) for version, labels in described["VersionIdsToStages"].items()}

    def latest_rotation(self) -> dict[str, Any]:
        items = self.demo.api(f"/credentials/{CREDENTIAL}/rotations")["items"]
        if not items:
            raise self.failed("no rotation of ghcr recorded")
        latest: dict[str, Any] = items[0]
        return latest

    def failed(self, message: str) -> Exception:
        from devstack.local.demo import StepFailed  # noqa: PLC0415 - the demo imports this module

        return StepFailed(message)

    def rotate(self, token: str, expect: int) -> dict[str, Any]:
        timeout = str(int(self.demo.args.timeout))
        self.demo.cli(
            "credentials", "rotate", CREDENTIAL, "--token-stdin", "--wait", "--timeout", timeout,
            stdin=token + "\n", expect=(expect,),
        )  # fmt: skip
        return self.latest_rotation()

    # ---- the steps ----------------------------------------------------------------------------------

    def wrong_token_refused(self) -> None:
        self.demo.step("Rotate GHCR's token to one GHCR refuses: refused, the current token stays current")
        before = self.current()
        rotation = self.rotate(WRONG_TOKEN, expect=6)
        if rotation["state"] != "refused":
            raise self.failed(f"the rotation with a wrong token ended {rotation['state']!r}, not refused: {rotation}")
        if self.current() != before:
            raise self.failed("AWSCURRENT changed after a refused rotation")
        if WRONG_TOKEN in json.dumps(rotation):
            raise self.failed("the refused token appears in the rotation record")
        self.no_pending()
        self.demo.show(f"refused at testSecret: {rotation['message']}")
        self.demo.show(f"GetSecretValue({SECRET}): AWSCURRENT is still version {before[0]} (the good token);")
        self.demo.show("DescribeSecret: no AWSPENDING left, so the next rotation can start")

    def new_token_promoted(self) -> None:
        self.demo.step("GHCR issues a new token: the rotation tests it, promotes it, ECR validates it; pulls work")
        users = f"{self.ghcr['registry']}/_ecrcache/users"
        self.demo.show(f'$ curl -X PUT {users} -d \'{{"username": "{self.ghcr["username"]}", "password": ...}}\'')
        answer = requests.put(users, json={"username": self.ghcr["username"], "password": NEW_TOKEN}, timeout=30)
        answer.raise_for_status()
        self.demo.show(f"{answer.json()}  (the stand-in takes the new token now; the old one is revoked)")
        old_version, _ = self.current()
        rotation = self.rotate(NEW_TOKEN, expect=0)
        if rotation["state"] != "promoted":
            raise self.failed(f"the rotation with GHCR's new token ended {rotation['state']!r}: {rotation}")
        version, token = self.current()
        if token != NEW_TOKEN or version == old_version:
            raise self.failed("AWSCURRENT does not hold the new token after a promoted rotation")
        stages = self.stages()
        if stages.get(old_version) != ["AWSPREVIOUS"]:
            raise self.failed(f"the old version is not AWSPREVIOUS: {stages}")
        self.no_pending()
        self.demo.show(f"AWSCURRENT is version {version} (the new token); {old_version} is AWSPREVIOUS")
        repository, tag = GHCR_IMAGE
        pulled = self.demo.ecr().batch_get_image(
            repositoryName=repository, imageIds=[{"imageTag": tag}], acceptedMediaTypes=MANIFEST_TYPES
        )
        if pulled.get("failures") or not pulled.get("images"):
            raise self.failed(f"the pull of {repository}:{tag} with the new token failed: {pulled.get('failures')}")
        digest = pulled["images"][0]["imageId"].get("imageDigest", "")
        self.demo.show(f"pulled {repository}:{tag} {digest} through the ghcr rule (ECR signed in with the new token)")

    def no_pending(self) -> None:
        pending = [version for version, labels in self.stages().items() if "AWSPENDING" in labels]
        if pending:
            raise self.failed(f"AWSPENDING is left on {pending}")

    def expiring_alerted(self) -> None:
        self.demo.step("An expiring credential is alerted (the daily health check, run now)")
        events_queue, topic_queue = self.alert_queues()
        expires = (datetime.now(UTC) + timedelta(days=EXPIRES_IN_DAYS)).date().isoformat()
        self.demo.cli("credentials", "set", CREDENTIAL, "--expires-at", expires)
        self.demo.cli("local", "fire", "CredentialHealthFunction")
        event, took = self.demo.wait_for("the Credential Expiring event", self.expiring(events_queue))
        detail = event["detail"]
        self.demo.show(f"EventBridge ({took:.1f} s): {event['detail-type']} from {event['source']}:")
        self.demo.show(f"  {json.dumps(detail)}")
        if (detail["expires_at"], detail["days_to_expiry"], detail["threshold"]) != (
            expires,
            EXPIRES_IN_DAYS,
            EXPECTED_THRESHOLD,
        ):
            raise self.failed(f"expected the {EXPECTED_THRESHOLD}-day alert for {expires}: {detail}")
        message, _ = self.demo.wait_for("the alert on the stack's SNS topic", self.topic_message(topic_queue))
        self.demo.show(f"SNS AlertTopic: {message['Subject']}")
        self.demo.cli("credentials", "status", CREDENTIAL)
        health = self.demo.api(f"/credentials/{CREDENTIAL}").get("health") or {}
        if health.get("state") != "Expiring":
            raise self.failed(f"ghcr's health is {health.get('state')!r}, not Expiring: {health}")

    # ---- where the alerts are captured --------------------------------------------------------------

    def alert_queues(self) -> tuple[str, str]:
        """A queue behind an EventBridge rule for ``Credential Expiring`` and one subscribed to the alert topic."""
        sqs, events, sns = self.client("sqs"), self.client("events"), self.client("sns")
        urls = [str(sqs.create_queue(QueueName=name)["QueueUrl"]) for name in (ALERT_QUEUE, TOPIC_QUEUE)]
        attribute = ["QueueArn"]
        arns = [sqs.get_queue_attributes(QueueUrl=u, AttributeNames=attribute)["Attributes"]["QueueArn"] for u in urls]
        pattern = {"source": ["ecrcache"], "detail-type": ["Credential Expiring"]}
        events.put_rule(Name=ALERT_QUEUE, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=ALERT_QUEUE, Targets=[{"Id": "demo", "Arn": arns[0]}])
        topic = self.alert_topic()
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arns[1])
        self.demo.show(f"rule {ALERT_QUEUE} on the default bus: {json.dumps(pattern)} -> SQS {ALERT_QUEUE}")
        self.demo.show(f"the stack's AlertTopicArn {topic} -> SQS {TOPIC_QUEUE}")
        return urls[0], urls[1]

    def alert_topic(self) -> str:
        stack = self.client("cloudformation").describe_stacks(StackName=self.demo.endpoints["stack"])["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if "AlertTopicArn" not in outputs:
            raise self.failed(f"the local stack has no AlertTopicArn output: {sorted(outputs)}")
        return str(outputs["AlertTopicArn"])

    def expiring(self, queue_url: str) -> Any:
        sqs = self.client("sqs")

        def received() -> dict[str, Any] | None:
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
                event: dict[str, Any] = json.loads(message["Body"])
                if event.get("detail", {}).get("credential") == CREDENTIAL:
                    return event
            return None

        return received

    def topic_message(self, queue_url: str) -> Any:
        sqs = self.client("sqs")

        def received() -> dict[str, Any] | None:
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
                envelope: dict[str, Any] = json.loads(message["Body"])
                if "Credential Expiring" in envelope.get("Message", "") and CREDENTIAL in envelope.get("Message", ""):
                    return envelope
            return None

        return received
