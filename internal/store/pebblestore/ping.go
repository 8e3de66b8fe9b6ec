package pebblestore

import "context"

// Ping reports whether the store is open. The database lives in this process, so an open
// store always answers; /readyz uses it like the fleet engines' Ping.
func (s *Store) Ping(context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.exit()
	return nil
}
