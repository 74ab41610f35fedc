package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcmetadata "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Access: one AccessSecretVersion call as Secret Manager saw it.
type Access struct {
	Name      string `json:"name"`
	Principal string `json:"principal,omitempty"` // from the call's bearer token; empty: none or unknown
	Code      string `json:"code"`
}

// Roles holding secretmanager.versions.access (IAM "Secret Manager roles and permissions";
// roles/editor does not hold it).
var accessRoles = []string{"roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner"}

var versionName = regexp.MustCompile(`^projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$`)

type secretManager struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	w *world
}

type smServer struct {
	*grpc.Server
	addr string
}

// serveSecretManager starts the Secret Manager imitation on 127.0.0.1 with a certificate made for
// this run, and returns the pool that trusts it.
func (w *world) serveSecretManager() (*smServer, *x509.CertPool, error) {
	cert, pool, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	secretmanagerpb.RegisterSecretManagerServiceServer(s, &secretManager{w: w})
	go s.Serve(lis)
	return &smServer{Server: s, addr: lis.Addr().String()}, pool, nil
}

// AccessSecretVersion follows the v1 API reference (projects.secrets.versions.access): the
// caller needs secretmanager.versions.access on the secret (granted on it or on its project),
// and without it is refused whether or not the secret exists; `latest` is the most recently
// created version whatever its state, and a version that is not ENABLED answers
// FAILED_PRECONDITION "... is in DISABLED state." (as google-github-actions/
// get-secretmanager-secrets#268 shows the real service doing); the answer names the version with
// the project's number.
func (s *secretManager) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	caller, known := s.caller(ctx)
	resp, err := s.access(caller, known, req.GetName())
	record := Access{Name: req.GetName(), Code: status.Code(err).String()}
	if known {
		record.Principal = caller.principal()
	}
	s.w.mu.Lock()
	s.w.accesses = append(s.w.accesses, record)
	s.w.mu.Unlock()
	return resp, err
}

// caller: the identity the call's `authorization: Bearer` token was issued for by the STS
// imitation.
func (s *secretManager) caller(ctx context.Context) (identity, bool) {
	md, _ := grpcmetadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if token, ok := strings.CutPrefix(v, "Bearer "); ok {
			s.w.mu.Lock()
			id, found := s.w.access[token]
			s.w.mu.Unlock()
			return id, found
		}
	}
	return identity{}, false
}

func (s *secretManager) access(caller identity, known bool, name string) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	if !known {
		return nil, status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token.")
	}
	m := versionName.FindStringSubmatch(name)
	if m == nil {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid resource field value in the request: %s", name)
	}
	project, secretID, version := m[1], m[2], m[3]
	p := s.w.in.Project
	if (project != p.ID && project != p.Number) || !s.allowed(caller, secretID) {
		return nil, status.Errorf(codes.PermissionDenied,
			"Permission 'secretmanager.versions.access' denied for resource '%s' (or it may not exist).", name)
	}
	secret, exists := s.w.in.Secrets[secretID]
	if !exists || len(secret.Versions) == 0 {
		return nil, status.Errorf(codes.NotFound, "Secret [projects/%s/secrets/%s] not found or has no versions.", p.Number, secretID)
	}
	n := len(secret.Versions)
	if version != "latest" {
		var err error
		if n, err = strconv.Atoi(version); err != nil || n < 1 || n > len(secret.Versions) {
			return nil, status.Errorf(codes.NotFound, "Secret Version [projects/%s/secrets/%s/versions/%s] not found.", p.Number, secretID, version)
		}
	}
	full := fmt.Sprintf("projects/%s/secrets/%s/versions/%d", p.Number, secretID, n)
	v := secret.Versions[n-1]
	if state := cmpOr(v.State, "ENABLED"); state != "ENABLED" {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", full, state)
	}
	crc := int64(crc32.Checksum([]byte(v.Data), crc32.MakeTable(crc32.Castagnoli)))
	return &secretmanagerpb.AccessSecretVersionResponse{
		Name:    full,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(v.Data), DataCrc32C: &crc},
	}, nil
}

// allowed: some member including the caller holds an access role on the secret or its project.
func (s *secretManager) allowed(caller identity, secretID string) bool {
	project := "projects/" + s.w.in.Project.ID
	for _, g := range s.w.in.IAM {
		onIt := g.Resource == project || g.Resource == project+"/secrets/"+secretID
		if onIt && slices.Contains(accessRoles, g.Role) && slices.Contains(caller.members(), g.Member) {
			return true
		}
	}
	return false
}

func cmpOr(value, otherwise string) string {
	if value == "" {
		return otherwise
	}
	return value
}

// selfSigned: a certificate for 127.0.0.1, valid for this run only.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
