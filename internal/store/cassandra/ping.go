package cassandra

import (
	"context"
	"fmt"

	"github.com/gocql/gocql"
)

// Ping reads one row of the contacted node's system.local table at consistency ONE: the
// cheapest query that proves a node answers queries, used by /readyz.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	var version string
	err := s.sess.Query("SELECT release_version FROM system.local").
		WithContext(ctx).Consistency(gocql.One).Idempotent(true).Scan(&version)
	if err != nil {
		return fmt.Errorf("cassandra does not answer (hosts %v): %w", s.cfg.Hosts, err)
	}
	return nil
}
