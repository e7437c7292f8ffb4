"""Calls of one step whose long name leaves a narrow terminal little room: they differ only at the end."""

from orchestrator import pipeline, step


@step
def compute_customer_lifetime_value_features_for_segment(x: int) -> int:
    return x + 1


@pipeline
def long_names(n: int = 1):
    a = compute_customer_lifetime_value_features_for_segment(n)
    b = compute_customer_lifetime_value_features_for_segment(a)
    return compute_customer_lifetime_value_features_for_segment(b)
