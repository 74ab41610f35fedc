package main

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// identity: a Kubernetes service account of the cluster, as Google IAM knows it.
type identity struct {
	projectNumber, pool, namespace, serviceAccount string
}

func (id identity) principal() string {
	return fmt.Sprintf("principal://iam.googleapis.com/projects/%s/locations/global/workloadIdentityPools/%s/subject/ns/%s/sa/%s",
		id.projectNumber, id.pool, id.namespace, id.serviceAccount)
}

// members: every IAM member string that includes this identity (Workload Identity Federation
// for GKE, "principal identifiers": the KSA's principal, all KSAs of its namespace, and the
// older serviceAccount:<pool>[<ns>/<ksa>] form of the same identity; plus IAM's two public
// members).
func (id identity) members() []string {
	poolPath := fmt.Sprintf("iam.googleapis.com/projects/%s/locations/global/workloadIdentityPools/%s", id.projectNumber, id.pool)
	return []string{
		id.principal(),
		fmt.Sprintf("principalSet://%s/namespace/%s", poolPath, id.namespace),
		fmt.Sprintf("serviceAccount:%s[%s/%s]", id.pool, id.namespace, id.serviceAccount),
		"allAuthenticatedUsers", "allUsers",
	}
}

// Exchange: one trade the STS imitation answered.
type Exchange struct {
	Audience  string `json:"audience"`
	Principal string `json:"principal,omitempty"`
	Refused   string `json:"refused,omitempty"`
}

// identityBindingTokenServer imitates securetoken.googleapis.com/v1/identitybindingtoken, which
// GKE's Workload Identity uses to trade a KSA token for a Google access token (an OAuth 2.0 token
// exchange, RFC 8693, JSON body as the provider's auth.go tradeIDBindToken sends it). It accepts
// only a token this cluster issued for the pool, presented with the audience
// identitynamespace:<pool>:<the cluster's container.googleapis.com URL>; the access token it
// returns stands for that KSA's principal and nothing else.
func (w *world) identityBindingTokenServer() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/identitybindingtoken", func(rw http.ResponseWriter, r *http.Request) {
		var req struct {
			GrantType          string `json:"grant_type"`
			SubjectTokenType   string `json:"subject_token_type"`
			RequestedTokenType string `json:"requested_token_type"`
			SubjectToken       string `json:"subject_token"`
			Audience           string `json:"audience"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.refuse(rw, "", "invalid_request", err.Error())
			return
		}
		if req.GrantType != "urn:ietf:params:oauth:grant-type:token-exchange" ||
			req.SubjectTokenType != "urn:ietf:params:oauth:token-type:jwt" ||
			req.RequestedTokenType != "urn:ietf:params:oauth:token-type:access_token" {
			w.refuse(rw, req.Audience, "invalid_request", "not a JWT-for-access-token exchange")
			return
		}
		c := w.in.Cluster
		want := fmt.Sprintf("identitynamespace:%s:https://container.googleapis.com/v1/projects/%s/locations/%s/clusters/%s",
			w.pool(), w.in.Project.ID, c.Location, c.Name)
		if req.Audience != want {
			w.refuse(rw, req.Audience, "invalid_target", "audience does not name this cluster's identity provider")
			return
		}
		w.mu.Lock()
		ksa, ok := w.ksaTokens[req.SubjectToken]
		w.mu.Unlock()
		if !ok || ksa.audience != w.pool() {
			w.refuse(rw, req.Audience, "invalid_grant", "subject token not issued by this cluster for the pool")
			return
		}
		id := identity{projectNumber: w.in.Project.Number, pool: w.pool(), namespace: ksa.namespace, serviceAccount: ksa.serviceAccount}
		token := randomToken("ya29.imitation-")
		w.mu.Lock()
		w.access[token] = id
		w.exchanges = append(w.exchanges, Exchange{Audience: req.Audience, Principal: id.principal()})
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]any{
			"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
			"token_type": "Bearer", "expires_in": 3600})
	})
	return mux
}

func (w *world) refuse(rw http.ResponseWriter, audience, code, why string) {
	w.mu.Lock()
	w.exchanges = append(w.exchanges, Exchange{Audience: audience, Refused: code + ": " + why})
	w.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(rw).Encode(map[string]string{"error": code, "error_description": why})
}
