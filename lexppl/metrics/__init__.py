"""
Evaluation metrics for explanations.

Selection metrics (:mod:`lexppl.metrics.selection`) compare binary masks,
``(N, D)`` or ``(S, N, D)``, with ground-truth masks ``(N, D)``; predictive
metrics (:mod:`lexppl.metrics.prediction`) score predictions made from the
selected features, averaged over mask samples.
"""

from lexppl.metrics.prediction import accuracy, accuracy_per_sample, auroc, auroc_per_sample
from lexppl.metrics.selection import (
    control_flow_rate,
    control_flow_rate_per_instance,
    false_discovery_rate,
    false_discovery_rate_per_instance,
    false_positive_rate,
    false_positive_rate_per_instance,
    median_rank,
    median_rank_per_instance,
    true_positive_rate,
    true_positive_rate_per_instance,
)

__all__ = [
    "accuracy",
    "accuracy_per_sample",
    "auroc",
    "auroc_per_sample",
    "control_flow_rate",
    "control_flow_rate_per_instance",
    "false_discovery_rate",
    "false_discovery_rate_per_instance",
    "false_positive_rate",
    "false_positive_rate_per_instance",
    "median_rank",
    "median_rank_per_instance",
    "true_positive_rate",
    "true_positive_rate_per_instance",
]
