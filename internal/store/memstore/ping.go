package memstore

import "context"

// Ping reports whether the store is open; /readyz uses it like the fleet engines' Ping.
func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}
