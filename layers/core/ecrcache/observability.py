"""The only Logger, Tracer and Metrics instances in the code base (style.md §6.2 rule 6)."""

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def count_by(name: str, *, dimension: str, value: str, count: int) -> None:
    """A count with a dimension of its own (e.g. ``PullEventsDropped`` by ``reason``), published at once:
    the shared :data:`metrics` carry one dimension set for every metric of an invocation."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=count,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=value)
