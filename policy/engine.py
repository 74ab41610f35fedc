"""Seed (policy work owns it): evaluate every rule over a plan's resources."""


def evaluate_plan(resources, stack):
    return []
