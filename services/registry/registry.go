// Package registry is service discovery for the fleet: collectors and query services
// register themselves, gateways look up healthy instances. The in-process implementation
// serves `glimpse all`; the Consul one serves the fleet. Both pass the conformance suite in
// registrytest.
package registry

import (
	"context"
	"errors"
)

// Service names used across the fleet.
const (
	Collector = "glimpse-collector"
	Query     = "glimpse-query"
	Processor = "glimpse-processor"
	Gateway   = "glimpse-gateway"
)

// InProcScheme prefixes addresses of instances that live in this process: the gateway calls
// their handler directly instead of going over the network.
const InProcScheme = "inproc://"

// Instance is one running copy of a service.
type Instance struct {
	ID      string            // unique per instance, stable for its lifetime
	Service string            // one of the service names above
	Address string            // "http://host:port" or InProcScheme + name
	Meta    map[string]string // version, zone, ...
}

// ErrNotFound is returned by Deregister for an unknown instance id.
var ErrNotFound = errors.New("registry: no such instance")

// Registry registers instances and lists the healthy ones.
type Registry interface {
	// Register adds or replaces inst (matched by ID). It is healthy from then on until it
	// is deregistered or, for registries with health checks, its check fails.
	Register(ctx context.Context, inst Instance) error
	// Deregister removes the instance with id.
	Deregister(ctx context.Context, id string) error
	// Instances returns the healthy instances of service, ordered by ID. Implementations
	// may answer from a cache; they must not block on a slow backend for longer than ctx.
	Instances(ctx context.Context, service string) ([]Instance, error)
	Close() error
}
