"""The only Logger, Tracer and Metrics instances in the code base (style.md §6.2 rule 6)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
