package consul

import (
	"context"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// Ping asks the local Consul agent for the cluster's leader, one small request: it proves
// the agent this process registers with answers, and that its servers have a leader
// (without one, registrations and lookups fail too). /readyz uses it.
func (r *Registry) Ping(ctx context.Context) error {
	leader, err := r.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul agent %s does not answer: %w", r.cfg.Address, err)
	}
	if leader == "" {
		return fmt.Errorf("consul agent %s answers but its cluster has no leader yet", r.cfg.Address)
	}
	return nil
}
