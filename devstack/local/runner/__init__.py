"""The local event runner: each function's ``Events`` from ``template.yaml``, delivered on one machine.

``make local`` has no Lambda service, so nothing would ever call the reconciler for a table write, a
schedule or an ECR event. :class:`EventRunner` plays that role for every event a function declares
in the template -- wired from the resolved :class:`~devstack.local.template.FunctionSpec`, so the
local stack and the deployed one cannot drift: an event type the runner cannot deliver fails
:meth:`EventRunner.deliveries` (and a contract test) with :class:`UnsupportedEventError`.

===================  ===================================================================================
event type           delivered by
===================  ===================================================================================
``DynamoDB``         this runner: a stream poller per shard (Lambda's event source mapping)
``SQS``              this runner: a queue poller per event (Lambda's SQS event source mapping)
``Schedule``         this runner: a scheduler thread per schedule on a virtual clock
``EventBridgeRule``  this runner: an EventBridge rule with an SQS target in the embedded AWS, polled
``Api``              :mod:`devstack.local.gateway` (the local API gateway), not this runner
===================  ===================================================================================

The template's own ``AWS::Events::Rule`` resources (rules with SQS targets, e.g. ECR's pull events
into a queue) are not function events: :mod:`devstack.local.provision` creates them in the embedded
AWS with their pattern, state and targets, the embedded EventBridge puts matching events on the
queue, and the queue's ``SQS`` event delivers them to the function like any other message.

DynamoDB streams (Lambda event source mapping)
----------------------------------------------
* Every shard of the stream is polled (``dynamodbstreams`` against the embedded AWS); shards that
  appear later are read from ``TRIM_HORIZON`` after their parent shard is drained, shards that close
  are drained and dropped. :meth:`EventRunner.setup` positions the initial shards per
  ``StartingPosition`` (``LATEST``: records written after ``setup()``; ``TRIM_HORIZON``).
* A failed ``GetRecords`` is retried with the same iterator (backoff), so no record is skipped. Only
  an iterator that can never work again (``ExpiredIteratorException``, ``TrimmedDataAccessException``)
  is replaced: ``AFTER_SEQUENCE_NUMBER`` of the last record read, else the shard's starting position;
  for ``LATEST`` that is ``TRIM_HORIZON`` skipping records whose ``ApproximateCreationDateTime`` (whole
  seconds) is before the second in which ``setup()`` positioned the shard (so records written in that
  same second just before ``setup()`` may be delivered too: at least once, never skipped).
* Each record is converted to exactly what Lambda delivers: ``eventID, eventName, eventVersion,
  eventSource, awsRegion, dynamodb {ApproximateCreationDateTime (epoch seconds), Keys, NewImage,
  OldImage, SequenceNumber, SizeBytes, StreamViewType}, eventSourceARN``, attribute values in
  DynamoDB JSON (binary values base64, as in Lambda events).
* ``FilterCriteria.Filters[].Pattern``: a record is delivered if any pattern matches (moto's
  EventBridge pattern matcher, see :mod:`devstack.local.filters`); records matching none are dropped.
* Batches of up to ``BatchSize`` records; a batch waits at most ``MaximumBatchingWindowInSeconds``
  after its first record arrived to fill up. The function gets ``{"Records": [...]}``.
* Records of a shard are delivered in order, one batch at a time; a failing batch blocks its shard.
* With ``FunctionResponseTypes: [ReportBatchItemFailures]``, ``{"batchItemFailures": [{"itemIdentifier":
  <SequenceNumber>}]}`` retries from the lowest failed record (it and those after it in the batch);
  an empty or missing list is success; a null/empty/unknown ``itemIdentifier`` fails the whole batch
  (Lambda's documented rules). A handler error (:class:`~devstack.local.invoke.FunctionError`, including a timeout:
  :class:`~devstack.local.invoke.FunctionTimeout`, ``Sandbox.Timedout``) or an unreachable host
  (:class:`~devstack.local.invoke.InvokeError`) retries the whole batch; ``BisectBatchOnFunctionError`` splits
  it in two first (not counted as a retry).
* ``MaximumRetryAttempts`` (-1 = until the record expires) and ``MaximumRecordAgeInSeconds`` bound the
  retries; then Lambda's on-failure record (``requestContext``, ``responseContext``, ``version``,
  ``timestamp``, ``DDBStreamBatchInfo``) goes to the ``DestinationConfig.OnFailure`` SQS queue and the
  shard moves on.

SQS queues (Lambda event source mapping)
----------------------------------------
* The queue is the template's (``Queue: !GetAtt <Queue>.Arn``, created by the provisioner with its
  ``VisibilityTimeout``, retention and ``RedrivePolicy``); :meth:`EventRunner.setup` checks it exists.
  It is received from with the queue's own visibility timeout, as Lambda does (no override).
* Batches (services-sqs-parameters, invocation-eventsourcemapping "Batching behavior"): up to
  ``BatchSize`` (default 10; over 10 needs ``MaximumBatchingWindowInSeconds`` >= 1). Without a window
  the function gets what one receive returns; with one, the runner keeps receiving until the batch is
  full, the window has passed or the payload reached 6 MB -- the window starts when the previous
  invocation completes. A full batch is invoked at once; an empty window invokes nothing.
* Each message becomes exactly Lambda's record: ``messageId, receiptHandle, body, attributes
  {ApproximateReceiveCount, SentTimestamp, SenderId, ApproximateFirstReceiveTimestamp (+ AWSTraceHeader,
  SequenceNumber, MessageGroupId, MessageDeduplicationId, DeadLetterQueueSourceArn when SQS returns
  them)}, messageAttributes {name: {stringValue|binaryValue (base64), stringListValues,
  binaryListValues, dataType}}, md5OfBody (, md5OfMessageAttributes), eventSource: aws:sqs,
  eventSourceARN, awsRegion`` (all attribute values strings, as Lambda sends them).
* ``FilterCriteria``: matched on the record with a JSON ``body`` parsed (``{"body": {"kind": ["warm"]}}``);
  a message that matches no filter is deleted without an invocation, as Lambda discards it.
* Success deletes the batch's messages. With ``ReportBatchItemFailures``, ``{"batchItemFailures":
  [{"itemIdentifier": <messageId>}]}`` deletes all but those; no response, an empty one or an
  empty/null list is success; a response that is not an object, a non-list, an entry without
  ``itemIdentifier``, an empty/null one or a messageId not in the batch fails the whole batch
  (services-sqs-errorhandling). A failed batch or message is not deleted: it reappears after the
  queue's visibility timeout, with ``ApproximateReceiveCount`` one higher.
* A handler error (:class:`~devstack.local.invoke.FunctionError`, including a timeout) leaves the
  whole batch. An unreachable host (:class:`~devstack.local.invoke.InvokeError`, Lambda's throttling
  case) is retried with the same batch (backoff) while its visibility timeout lasts, then left.
* Redrive is the queue's: after ``maxReceiveCount`` receives the embedded SQS (moto, which implements
  it on receive as SQS does) moves the message to the ``deadLetterTargetArn`` queue; the runner adds
  nothing. A message received again while it waits in a batching window (its visibility ran out)
  replaces its older copy in the batch.

EventBridge rules and schedules (asynchronous invocation)
---------------------------------------------------------
* ``EventBridgeRule``: :meth:`EventRunner.setup` puts a rule ``<stack>-<function>-<event>`` with the
  event's ``Pattern`` on its bus (``default`` unless ``EventBusName``) and an SQS queue of the same name
  as its target; the embedded AWS matches and delivers its events (moto's matcher), the runner polls
  the queue and invokes the function with the event envelope (``Input``/``InputPath`` applied).
* ``Schedule``: ``rate(N minute|minutes|hour|hours|day|days)`` and 6-field ``cron(...)`` (see
  :mod:`devstack.local.schedule`) on a virtual clock: virtual now = start + real elapsed x ``schedule_speed``; a
  schedule fires when virtual now passes its next fire time (speed 60 fires ``rate(15 minutes)``
  every 15 real seconds). The event is the parsed ``Input`` or else the ``Scheduled Event`` envelope.
  A schedule that is disabled in the template (``Enabled: false`` / ``State: DISABLED``) is not run;
  the runner also creates the schedule's rule in the embedded AWS and skips a fire while that rule is
  disabled there (``aws events disable-rule`` works locally too). :meth:`EventRunner.fire` runs a
  schedule now.
* Both are asynchronous invocations, with AWS's two layers of retries:

  - **EventBridge -> Lambda** (the invoke itself is refused: locally an :class:`~devstack.local.invoke.InvokeError`
    on the first attempt): retried per the event's ``RetryPolicy`` (``MaximumRetryAttempts``, default
    185; ``MaximumEventAgeInSeconds``, default 86400), then the event goes to ``DeadLetterConfig.Arn``
    with EventBridge's message attributes (``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``,
    ``ERROR_MESSAGE``, ``EXHAUSTED_RETRY_CONDITION``, ``RETRY_ATTEMPTS``). An event already older than
    ``MaximumEventAgeInSeconds`` (its envelope ``time``) is dead-lettered without an invocation.
  - **Lambda's asynchronous retries** (the handler fails: :class:`~devstack.local.invoke.FunctionError`, including
    a timeout -- :class:`~devstack.local.invoke.FunctionTimeout`, ``errorType`` ``Sandbox.Timedout`` in the record --,
    or the host fails on a retry): 1 + the function's ``EventInvokeConfig.MaximumRetryAttempts`` (default 2)
    attempts within ``EventInvokeConfig.MaximumEventAgeInSeconds`` (default 21600), then Lambda's
    invocation record (``requestContext.condition: RetriesExhausted|EventAgeExceeded``,
    ``requestPayload``, ``responseContext``, ``responsePayload``) goes to
    ``EventInvokeConfig.DestinationConfig.OnFailure``; without one the event is discarded (logged).
    ``OnSuccess`` destinations get the success record.

  A rule's queue message is deleted once the event is delivered or dead-lettered.

Stopping
--------
:meth:`EventRunner.stop` returns within about 1.2 s, every thread ended, when nothing is being
invoked. A thread in the middle of an invocation finishes it (logs its outcome; sends a destination
record if it was the last attempt) but starts no further invocation -- no retry, no next batch or
event -- and then ends; :meth:`EventRunner.threads` lists it until then. A rule's event whose
delivery was cut short is made visible in its queue again (the next runner delivers it). An SQS
batch being invoked finishes and is settled (deletes, partial failures) as usual; messages received
but not yet handed to the function (a batching window in progress) are made visible again at once.

Where local differs from AWS
----------------------------
* Retry delays are a short exponential backoff (``retry_backoff`` doubling up to ``max_backoff``),
  not Lambda's 1 and 2 minutes (async) or the stream's backoff; the counts and destinations are AWS's.
* One invocation at a time per event source (per shard for streams): no concurrency, no
  ``ParallelizationFactor`` > 1 (accepted, run as 1), no throttling, and no 6 MB payload limit for
  streams. An SQS event's ``ScalingConfig.MaximumConcurrency`` is accepted and run as 1: each
  function has one host, which runs one invocation at a time, so concurrent batches would only
  queue at the host and could time out waiting there. Lambda's polling scale-up and its backoff
  after function errors (fewer pollers) are not reproduced; idle queues are polled every ``poll_interval``.
* The ``EventBridgeRule`` ``State`` ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`` is passed to the
  embedded EventBridge as is; whether read-only CloudTrail events reach such a rule is the embedded
  AWS's behaviour (the same holds for provisioned ``AWS::Events::Rule`` resources).
* Schedules run on the virtual clock (``time`` in a ``Scheduled Event`` is the virtual fire time);
  fire times missed while a delivery was running are coalesced into one fire.
* The function ARN in records is ``arn:aws:lambda:<region>:<account>:function:<stack>-<function>``;
  the account is the embedded AWS's (``sts:GetCallerIdentity``) unless ``account_id`` is given.
* The embedded DynamoDB (moto) has one shard per stream that never closes or splits; the shard
  handling above is there for fidelity, not exercised by it. Idle polling costs a few requests a
  second per event source (``poll_interval``).
* A function's own ``DeadLetterQueue`` property is not read (only ``EventInvokeConfig`` destinations).
* Not reproduced (rejected with :class:`UnsupportedEventError`, so they cannot be used unnoticed):
  ``StartingPosition: AT_TIMESTAMP``, ``TumblingWindowInSeconds``, ``InputTransformer``, an
  ``InputPath`` other than ``$``/``$.a.b``, SAM-created dead-letter queues (``DeadLetterConfig.Type``),
  non-SQS destinations, SQS events on FIFO queues and ``ProvisionedPollerConfig``.

Modules
-------
* :mod:`.plan` -- what each event means, from the template alone (sources, :class:`UnsupportedEventError`);
* :mod:`.stream` -- the DynamoDB stream source (shards, batches, retries, on-failure records);
* :mod:`.queues` -- the SQS source (batching window, Lambda's records, partial batch responses);
* :mod:`.rules` -- the EventBridge rule source (a rule and its SQS queue in the embedded AWS, polled);
* :mod:`.schedules` -- the schedules on the virtual clock;
* :mod:`.async_invoke` -- asynchronous invocation for rules and schedules (both retry layers, destinations);
* :mod:`.aws` -- the embedded AWS's clients and names; :mod:`.core` -- the threads, stop and backoff;
* :mod:`.event_runner` -- :class:`EventRunner`, wiring them from the template.
"""

from __future__ import annotations

from devstack.local.runner.event_runner import EventRunner
from devstack.local.runner.plan import DELIVERED_ELSEWHERE, LOCALLY_DELIVERED, Delivery, UnsupportedEventError

__all__ = [
    "DELIVERED_ELSEWHERE",
    "LOCALLY_DELIVERED",
    "Delivery",
    "EventRunner",
    "UnsupportedEventError",
]
