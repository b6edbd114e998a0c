"""Pull statistics function: an SQS batch of ECR pull events -> one pending delta, compacted into daily counters.

The queue (``PullEventsQueue``) receives the CloudTrail ``BatchGetImage`` / ``GetDownloadUrlForLayer``
events and the ``ECR Pull Through Cache Action`` events; the whole batch is counted in memory and written
as one delta item, and every 15 minutes a batch also folds the pending deltas into the daily counters
(:mod:`ecrcache.services.pull_stats`, :mod:`ecrcache.services.pull_compaction`). The records it could not
count are answered as batch item failures (``ReportBatchItemFailures``) for SQS to deliver again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import SqsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecrcache.adapters.alert_topic import SnsAlerts
from ecrcache.adapters.credential_health_store import DynamoDbCredentialHealthStore
from ecrcache.adapters.health_events import EventBridgeHealthNotifier
from ecrcache.adapters.pull_compaction_store import DynamoDbPullCompactionStore
from ecrcache.adapters.pull_stats_store import DynamoDbPullStatsStore
from ecrcache.config import pull_stats_settings, stack_region
from ecrcache.observability import logger, metrics, tracer
from ecrcache.services.credential_health import CredentialMarks
from ecrcache.services.pull_compaction import PullCompaction
from ecrcache.services.pull_stats import PullStatsService

settings = pull_stats_settings()
store = DynamoDbPullStatsStore(settings.table_name)
service = PullStatsService(
    store,
    stack_region=stack_region(),
    warmer_role_arn=settings.warmer_role_arn,
    compaction=PullCompaction(store, DynamoDbPullCompactionStore(settings.table_name, store.client)),
    # A pull-through cache action refused on the credential marks it Invalid at once, and announces it.
    marks=CredentialMarks(
        store=DynamoDbCredentialHealthStore(settings.table_name, store.client),
        notifier=EventBridgeHealthNotifier(
            alerts=SnsAlerts(settings.alert_topic_arn) if settings.alert_topic_arn else None
        ),
        clock=lambda: datetime.now(UTC),
    ),
)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = parse(event=event, model=SqsModel)  # not an SQS batch at all: the invocation fails
    return service.record(batch.Records, lambda: context.get_remaining_time_in_millis() / 1000).response()
