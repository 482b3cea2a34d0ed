"""
Evaluation metrics for explanations.

Selection metrics (:mod:`lexppl.metrics.selection`) compare binary masks,
``(N, D)`` or ``(S, N, D)``, with ground-truth masks ``(N, D)``; predictive
metrics (:mod:`lexppl.metrics.prediction`) score predictions made from the
selected features, averaged over mask samples. Fidelity, robustness, cost and
sanity metrics (FS-M/FU-M, FS-A/FU-A, SEN, time, model randomisation) are in
:mod:`lexppl.metrics.fidelity`; eACC/eAUROC in :class:`lexppl.methods.EvalX`.
"""

from lexppl.metrics.fidelity import (
    agreement_per_sample,
    black_box_fidelity,
    explanation_similarity_per_instance,
    explanation_time,
    fs_a,
    fs_m,
    fu_a,
    fu_m,
    mask_inputs,
    max_sensitivity,
    max_sensitivity_per_instance,
    model_randomisation_check,
    posthoc_accuracy,
    retrained_fidelity,
    uniform_perturbations,
)
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
    "agreement_per_sample",
    "auroc",
    "auroc_per_sample",
    "black_box_fidelity",
    "control_flow_rate",
    "control_flow_rate_per_instance",
    "explanation_similarity_per_instance",
    "explanation_time",
    "false_discovery_rate",
    "false_discovery_rate_per_instance",
    "false_positive_rate",
    "false_positive_rate_per_instance",
    "fs_a",
    "fs_m",
    "fu_a",
    "fu_m",
    "mask_inputs",
    "max_sensitivity",
    "max_sensitivity_per_instance",
    "median_rank",
    "median_rank_per_instance",
    "model_randomisation_check",
    "posthoc_accuracy",
    "retrained_fidelity",
    "true_positive_rate",
    "true_positive_rate_per_instance",
    "uniform_perturbations",
]
