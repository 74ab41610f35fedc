package main

import (
	"encoding/json"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// The Kubernetes side: the Secrets Store CSI driver's call into the provider, the pod's service
// account token, and the API server's answer to GET serviceaccounts.

type ksaToken struct {
	namespace, serviceAccount, audience string
}

// mountRequest is what the driver sends for the pod's volume
// (sigs.k8s.io/secrets-store-csi-driver v1.4.7, pkg/secrets-store/nodeserver.go NodePublishVolume):
// the class's parameters, the kubelet's pod attributes (podInfoOnMount; the volume's own
// secretProviderClass attribute is left out, the provider ignores it), the pod's service
// account tokens (CSIDriver tokenRequests; pkg/k8s/token.go documents the shape), the file
// permission json.Marshal(0644) = "420" and no node-publish secrets.
func (w *world) mountRequest() *v1alpha1.MountRequest {
	attributes := map[string]string{}
	for k, v := range w.in.Parameters {
		attributes[k] = v
	}
	pod := w.in.Pod
	attributes["csi.storage.k8s.io/ephemeral"] = "true"
	attributes["csi.storage.k8s.io/pod.name"] = pod.Name
	attributes["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
	attributes["csi.storage.k8s.io/pod.uid"] = pod.UID
	attributes["csi.storage.k8s.io/serviceAccount.name"] = pod.ServiceAccount
	attributes["csi.storage.k8s.io/serviceAccount.tokens"] = w.podTokens()
	encoded, err := json.Marshal(attributes)
	if err != nil {
		panic(err)
	}
	return &v1alpha1.MountRequest{
		Attributes: string(encoded),
		Secrets:    "null",
		TargetPath: "/var/lib/kubelet/pods/" + pod.UID + "/volumes/kubernetes.io~csi/livekit-credentials/mount",
		Permission: "420",
	}
}

// podTokens: the kubelet's TokenRequest for the pod's own service account, audience the
// project's Workload Identity pool (the audience the provider looks for, auth.go extractSAToken),
// encoded {audience: {token, expirationTimestamp}}. The token is opaque here; the STS imitation
// recognises only tokens issued by this cluster, which stands for checking the signature against
// the cluster's OIDC keys.
func (w *world) podTokens() string {
	token := randomToken("ksa-")
	w.mu.Lock()
	w.ksaTokens[token] = ksaToken{namespace: w.in.Pod.Namespace, serviceAccount: w.in.Pod.ServiceAccount, audience: w.pool()}
	w.mu.Unlock()
	encoded, err := json.Marshal(map[string]any{w.pool(): map[string]string{
		"token": token, "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	if err != nil {
		panic(err)
	}
	return string(encoded)
}

// kubernetesAPI answers GET /api/v1/namespaces/{ns}/serviceaccounts/{name} (core/v1 API; a
// missing object is a 404 Status with reason NotFound, as the API server answers). JSON, which
// client-go accepts even when it asked for protobuf first.
func (w *world) kubernetesAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/namespaces/{namespace}/serviceaccounts/{name}", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		for _, sa := range w.in.ServiceAccounts {
			if sa.Namespace == r.PathValue("namespace") && sa.Name == r.PathValue("name") {
				sa.APIVersion, sa.Kind = "v1", "ServiceAccount"
				json.NewEncoder(rw).Encode(sa)
				return
			}
		}
		rw.WriteHeader(http.StatusNotFound)
		json.NewEncoder(rw).Encode(metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
			Message: `serviceaccounts "` + r.PathValue("name") + `" not found`,
			Details: &metav1.StatusDetails{Name: r.PathValue("name"), Kind: "serviceaccounts"}})
	})
	return mux
}
