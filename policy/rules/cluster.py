"""Rules for the GKE Autopilot cluster: private nodes, a closed control plane, managed upgrades, protection."""

from __future__ import annotations

from policy.rules.base import (
    ADVISORY, CLUSTER, MANDATORY, Rule, prop, unless,
)


def _private_nodes(p, ctx):
    return unless(prop(p, "privateClusterConfig", "enablePrivateNodes") is True,
                   "nodes get public IPs: set privateClusterConfig.enablePrivateNodes = true")


def _no_open_control_plane(p, ctx):
    blocks = prop(p, "masterAuthorizedNetworksConfig", "cidrBlocks", default=[])
    messages = [f"authorized network {b.get('displayName', '?')} = {b.get('cidrBlock')} opens the control plane to the internet"
                for b in blocks if str(b.get("cidrBlock", "")).endswith("/0")]
    ip_enabled = prop(p, "controlPlaneEndpointsConfig", "ipEndpointsConfig", "enabled", default=True)
    if ip_enabled and not blocks:
        messages.append("the control plane's IP endpoint is on with no authorized networks: any address may try it; "
                        "disable ipEndpointsConfig or name narrow ranges (CI uses the DNS endpoint)")
    # Narrow authorised ranges do not help when every Google Cloud public address is let in
    # as well: any VM of any Google Cloud customer then reaches the endpoint.
    if ip_enabled and prop(p, "masterAuthorizedNetworksConfig", "gcpPublicCidrsAccessEnabled") is True:
        messages.append("masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled = true admits every Google Cloud "
                        "public IP to the control plane's IP endpoint, not just the named ranges; set it to false")
    return messages


def _release_channel(p, ctx):
    channel = prop(p, "releaseChannel", "channel")
    return unless(channel not in (None, "", "UNSPECIFIED"),
                   f"release channel is {channel!r}: without one, upgrades are unmanaged; use REGULAR or STABLE")


def _deletion_protection(p, ctx):
    if not ctx.protected:
        return []
    return unless(prop(p, "deletionProtection") is True,
                   "deletionProtection is off in a protected stack: one `pulumi destroy` ends every live call")


def _no_default_compute_sa(p, ctx):
    sa = prop(p, "clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount") or prop(p, "nodeConfig", "serviceAccount")
    if not sa or sa == "default" or str(sa).endswith("-compute@developer.gserviceaccount.com"):
        return [f"nodes run as {sa or 'the default compute service account'} (Editor on the project); "
                "use a dedicated account with roles/container.defaultNodeServiceAccount"]
    return []


def _autopilot_no_node_config(p, ctx):
    if prop(p, "enableAutopilot") is not True:
        return ["enableAutopilot is not true: this platform assumes Autopilot's node management and pod rules"]
    return unless(not prop(p, "nodeConfig"),
                   "nodeConfig is set on an Autopilot cluster: a known perma-diff that replaces the cluster; "
                   "set the node identity in clusterAutoscaling.autoProvisioningDefaults")


def _kubelet_readonly_port_off(p, ctx):
    value = prop(p, "nodePoolAutoConfig", "nodeKubeletConfig", "insecureKubeletReadonlyPortEnabled")
    return unless(value == "FALSE",
                  f"the kubelet read-only port (10255, no authentication) is {'left to the GKE default' if value is None else value}: "
                  "anything on the node network can read every pod's spec; set "
                  "nodePoolAutoConfig.nodeKubeletConfig.insecureKubeletReadonlyPortEnabled = FALSE")


def _system_metrics(p, ctx):
    components = prop(p, "monitoringConfig", "enableComponents")
    if components is None:
        return ["monitoringConfig.enableComponents is not set: the provider then sends an empty list, which GKE reads as "
                "'disable all' (TGKE #1786); send SYSTEM_COMPONENTS, plus HPA and DEPLOYMENT to see scaling and rollouts"]
    return unless("SYSTEM_COMPONENTS" in components,
                  f"monitoringConfig.enableComponents = {list(components)} leaves out SYSTEM_COMPONENTS, which Autopilot "
                  "requires and the node and pod dashboards read")


def _secrets_encryption(p, ctx):
    if not ctx.protected:
        return []
    state, key = prop(p, "databaseEncryption", "state"), prop(p, "databaseEncryption", "keyName")
    return unless(state == "ENCRYPTED" and bool(key),
                  "Kubernetes Secrets are not encrypted with a key of this stack in a protected "
                  "stack: set databaseEncryption {state: ENCRYPTED, keyName: <Cloud KMS key>} (setting secretsEncryption)")


def _binary_authorization(p, ctx):
    if not ctx.protected:
        return []
    mode = prop(p, "binaryAuthorization", "evaluationMode")
    return unless(mode == "PROJECT_SINGLETON_POLICY_ENFORCE",
                  f"binaryAuthorization.evaluationMode is {mode or 'not set'} in a protected stack: any image from any "
                  "registry can run next to the calls; set PROJECT_SINGLETON_POLICY_ENFORCE (setting binaryAuthorization)")


RULES: tuple[Rule, ...] = (
    Rule("gke-private-nodes", MANDATORY, "Cluster nodes have no public IPs.", (CLUSTER,), _private_nodes),
    Rule("gke-no-open-control-plane", MANDATORY, "The control plane is not reachable from 0.0.0.0/0.", (CLUSTER,), _no_open_control_plane),
    Rule("gke-release-channel", ADVISORY, "The cluster follows a release channel.", (CLUSTER,), _release_channel),
    Rule("gke-deletion-protection", MANDATORY, "Protected stacks keep deletion protection on.", (CLUSTER,), _deletion_protection,
         config=("protected",)),
    Rule("gke-no-default-compute-sa", MANDATORY, "Nodes do not run as the default compute service account.", (CLUSTER,), _no_default_compute_sa),
    Rule("gke-autopilot-no-node-config", MANDATORY, "Autopilot clusters set no node_config.", (CLUSTER,), _autopilot_no_node_config),
    Rule("gke-kubelet-readonly-port-off", MANDATORY, "The kubelet's unauthenticated read-only port is off.", (CLUSTER,),
         _kubelet_readonly_port_off),
    Rule("gke-system-metrics", ADVISORY, "Cluster monitoring sends the system components.", (CLUSTER,), _system_metrics),
    Rule("gke-secrets-encryption", MANDATORY, "Protected stacks encrypt Secrets with their own Cloud KMS key.", (CLUSTER,),
         _secrets_encryption, config=("protected",)),
    Rule("gke-binary-authorization", MANDATORY, "Protected stacks enforce the Binary Authorization policy.", (CLUSTER,),
         _binary_authorization, config=("protected",)),
)
