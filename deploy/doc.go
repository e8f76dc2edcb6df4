// Package deploy holds no code of its own: its tests render the
// Kubernetes manifests under kubernetes/ with kustomize and validate them
// offline (strict decoding into the Kubernetes types, the cross-references
// between objects, and the gateway's config file through config.Load).
// It is a module of its own so that the gateway's go.mod stays lean.
package deploy
