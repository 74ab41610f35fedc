"""Capacity and timing rules across the workload's settings (seed; the k8s work fills it in)."""


def workload_problems(workload):
    return []
