package main

import "net/http"

// metadataServer imitates the GCE metadata server of a GKE node for the four values asked of it
// (the provider's auth.go asks project-id, instance/attributes/cluster-location and cluster-name;
// numeric-project-id for completeness). Like the real one it answers only requests carrying
// Metadata-Flavor: Google, and says so in its answer (cloud.google.com/compute/docs/metadata/
// querying-metadata). The client library finds it through GCE_METADATA_HOST.
func metadataServer(in Input) http.Handler {
	values := map[string]string{
		"/computeMetadata/v1/project/project-id":                   in.Project.ID,
		"/computeMetadata/v1/project/numeric-project-id":           in.Project.Number,
		"/computeMetadata/v1/instance/attributes/cluster-name":     in.Cluster.Name,
		"/computeMetadata/v1/instance/attributes/cluster-location": in.Cluster.Location,
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Metadata-Flavor", "Google")
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(rw, "Missing Metadata-Flavor:Google header", http.StatusForbidden)
			return
		}
		value, ok := values[r.URL.Path]
		if !ok || r.Method != http.MethodGet {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/text")
		rw.Write([]byte(value))
	})
}
