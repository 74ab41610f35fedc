package main

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
)

// world: what the imitated servers share. Kubernetes issues the pod's token, the STS trades it
// for an access token standing for the pod's principal, Secret Manager checks that principal's
// grants; each records what it saw so the result shows the token really travelled.
type world struct {
	in Input

	mu        sync.Mutex
	ksaTokens map[string]ksaToken // issued Kubernetes service account tokens
	access    map[string]identity // issued access tokens
	exchanges []Exchange
	accesses  []Access
}

func newWorld(in Input) *world {
	return &world{in: in, ksaTokens: map[string]ksaToken{}, access: map[string]identity{}, exchanges: []Exchange{}, accesses: []Access{}}
}

// pool: the Workload Identity pool of every GKE cluster of a project.
func (w *world) pool() string { return w.in.Project.ID + ".svc.id.goog" }

func randomToken(prefix string) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}
