"""Seed (k8s work owns it): turn mocked Kubernetes resource inputs into applied manifests."""


def manifest_from_inputs(resource_type, inputs):
    return None
