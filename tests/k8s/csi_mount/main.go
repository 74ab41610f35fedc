// Command csi-mount runs the GCP Secrets Store CSI provider's own mount
// (github.com/GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp v1.7.0,
// server.Server.Mount, unchanged) for one pod, against imitations of the servers it calls:
// the GCE metadata server, the Kubernetes API, the identity-binding-token (STS) endpoint and
// Secret Manager. GKE's Secret Manager add-on is derived from that provider.
//
//	csi-mount < input.json > result.json
//
// Input and Output below are the whole interface. Exit 0 whenever the mount ran, a refused
// mount included (it is a result); 2 when the input is unusable or the harness itself fails.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
	iamcredentials "cloud.google.com/go/iam/credentials/apiv1"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"github.com/GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp/auth"
	"github.com/GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp/server"
	"google.golang.org/api/option"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Input: the world one mount happens in.
type Input struct {
	Project struct {
		ID     string `json:"id"`
		Number string `json:"number"`
	} `json:"project"`
	Cluster struct {
		Name     string `json:"name"`
		Location string `json:"location"`
	} `json:"cluster"`
	Pod struct {
		Namespace      string `json:"namespace"`
		Name           string `json:"name"`
		UID            string `json:"uid"`
		ServiceAccount string `json:"serviceAccount"`
	} `json:"pod"`
	// The SecretProviderClass's spec.parameters, as the driver hands them on.
	Parameters map[string]string `json:"parameters"`
	// The ServiceAccount objects the Kubernetes API holds.
	ServiceAccounts []corev1.ServiceAccount `json:"serviceAccounts"`
	// Secret id (in Project) -> its versions, oldest first; version n is the n-th.
	Secrets map[string]struct {
		Versions []Version `json:"versions"`
	} `json:"secrets"`
	// IAM members: resource "projects/<id>" or "projects/<id>/secrets/<secret id>".
	IAM []Grant `json:"iam"`
}

type Version struct {
	Data  string `json:"data"`
	State string `json:"state"` // ENABLED (default), DISABLED or DESTROYED
}

type Grant struct {
	Resource string `json:"resource"`
	Role     string `json:"role"`
	Member   string `json:"member"`
}

// Output: what the provider answered, and what the imitated servers saw.
type Output struct {
	Files          []File          `json:"files"`
	ObjectVersions []ObjectVersion `json:"objectVersions"`
	Error          *Status         `json:"error,omitempty"`
	Exchanges      []Exchange      `json:"exchanges"` // token trades the STS imitation answered
	Accesses       []Access        `json:"accesses"`  // AccessSecretVersion calls Secret Manager saw
	// Where each imitation listened (127.0.0.1, a port the kernel picked), for reading logs.
	Endpoints map[string]string `json:"endpoints"`
}

type File struct {
	Path     string `json:"path"`
	Mode     int32  `json:"mode"`
	Contents string `json:"contents"`
}

type ObjectVersion struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

type Status struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Details []Status `json:"details,omitempty"`
}

func main() {
	var in Input
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail("reading the input: %v", err)
	}
	out, err := run(in)
	if err != nil {
		fail("%v", err)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail("writing the result: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "csi-mount: "+format+"\n", args...)
	os.Exit(2)
}

func run(in Input) (*Output, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWorld(in)

	// Every imitation on 127.0.0.1 and a port the kernel picks.
	meta := httptest.NewServer(metadataServer(in))
	defer meta.Close()
	kube := httptest.NewServer(w.kubernetesAPI())
	defer kube.Close()
	sts := httptest.NewServer(w.identityBindingTokenServer())
	defer sts.Close()
	sm, pool, err := w.serveSecretManager()
	if err != nil {
		return nil, err
	}
	defer sm.Stop()

	// The provider finds the metadata server and the token endpoint through the environment
	// (metadata library; vars/vars.go). The rest are unset to keep the run hermetic: the
	// identity provider's URL at its default, no fleet credentials file (auth.go falls back to
	// GOOGLE_APPLICATION_CREDENTIALS when the GKE path fails), no node-publish secret auth.
	os.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(meta.URL, "http://"))
	os.Setenv("GAIA_TOKEN_EXCHANGE_ENDPOINT", sts.URL+"/v1/identitybindingtoken")
	os.Unsetenv("GKE_WORKLOAD_IDENTITY_ENDPOINT")
	os.Unsetenv("GOOGLE_APPLICATION_CREDENTIALS")
	os.Unsetenv("ALLOW_NODE_PUBLISH_SECRET")

	provider, err := newProvider(ctx, kube.URL, sm.addr, pool)
	if err != nil {
		return nil, err
	}
	resp, mountErr := provider.Mount(ctx, w.mountRequest())

	out := &Output{Files: []File{}, ObjectVersions: []ObjectVersion{}, Exchanges: w.exchanges, Accesses: w.accesses,
		Endpoints: map[string]string{"metadata": meta.URL, "kubernetes": kube.URL, "sts": sts.URL, "secretmanager": sm.addr}}
	if mountErr != nil {
		out.Error = statusOf(status.Convert(mountErr).Proto())
		return out, nil
	}
	for _, f := range resp.GetFiles() {
		out.Files = append(out.Files, File{Path: f.GetPath(), Mode: f.GetMode(), Contents: string(f.GetContents())})
	}
	for _, v := range resp.GetObjectVersion() {
		out.ObjectVersions = append(out.ObjectVersions, ObjectVersion{ID: v.GetId(), Version: v.GetVersion()})
	}
	return out, nil
}

// newProvider builds the provider's server.Server the way its main.go does, pointed at the
// imitations: the Kubernetes client at kubeURL, Secret Manager at smAddr without transport-level
// auth (the provider adds the pod's token per call). The transport is TLS with the harness's own
// certificate, not insecure: grpc-go refuses to send per-RPC credentials that require transport
// security (the provider's oauth.TokenSource does) over an insecure connection.
func newProvider(ctx context.Context, kubeURL, smAddr string, pool *x509.CertPool) (*server.Server, error) {
	rc := &rest.Config{Host: kubeURL}
	rc.ContentType = runtime.ContentTypeProtobuf // as main.go
	clientset, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	smOpts := []option.ClientOption{
		option.WithEndpoint(smAddr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))),
	}
	sc, err := secretmanager.NewClient(ctx, smOpts...)
	if err != nil {
		return nil, fmt.Errorf("secret manager client: %w", err)
	}
	// Only used for KSAs annotated iam.gke.io/gcp-service-account; the imitation has no IAM
	// Credentials API, so such a KSA gets Unimplemented (the stack annotates none).
	iamc, err := iamcredentials.NewIamCredentialsClient(ctx, smOpts...)
	if err != nil {
		return nil, fmt.Errorf("iam credentials client: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{Dial: (&net.Dialer{Timeout: 2 * time.Second}).Dial}, Timeout: 10 * time.Second}
	return &server.Server{
		AuthClient: &auth.Client{
			KubeClient:     clientset,
			MetadataClient: metadata.NewClient(hc),
			IAMClient:      iamc,
			HTTPClient:     hc,
		},
		SecretClient:          sc,
		RegionalSecretClients: map[string]*secretmanager.Client{},
		SmOpts:                smOpts,
	}, nil
}

func statusOf(s *spb.Status) *Status {
	out := &Status{Code: codeName(s.GetCode()), Message: s.GetMessage()}
	for _, d := range s.GetDetails() {
		inner := &spb.Status{}
		if err := d.UnmarshalTo(inner); err == nil {
			out.Details = append(out.Details, *statusOf(inner))
		}
	}
	return out
}

func codeName(c int32) string { return codes.Code(c).String() }
