"""The only Logger, Tracer and Metrics instances in the code base (style.md §6.2 rule 6).

Every metric goes to one namespace (``POWERTOOLS_METRICS_NAMESPACE``, ``ecrcache`` in the template) with the
dimension ``service`` (``POWERTOOLS_SERVICE_NAME``, ``ecrcache``); the few published with a dimension of their own
(:func:`count_by`, :func:`measure_by`) carry it as well. README "Metrics" lists them all; the dashboard and the
alarms in ``template.yaml`` name only metrics emitted here (tests/contract/test_observability.py).
"""

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def measure_by(name: str, *, dimension: str, value: str, amount: float, unit: MetricUnit = MetricUnit.Count) -> None:
    """A metric with a dimension of its own (e.g. ``ApiRequests`` by ``status_class``), published at once: the
    shared :data:`metrics` carry one dimension set for every metric of an invocation. Off where Powertools' metrics
    are (``POWERTOOLS_METRICS_DISABLED``, ``POWERTOOLS_DEV``): ``single_metric`` prints its EMF line regardless."""
    if is_metrics_disabled():
        return
    with single_metric(
        name=name,
        unit=unit,
        value=amount,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


def count_by(name: str, *, dimension: str, value: str, count: int) -> None:
    """A count with a dimension of its own (e.g. ``PullEventsDropped`` by ``reason``): :func:`measure_by`."""
    measure_by(name, dimension=dimension, value=value, amount=count)
