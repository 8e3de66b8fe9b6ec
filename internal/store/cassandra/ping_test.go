package cassandra

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

func TestPing(t *testing.T) {
	needNode(t)
	s := openTest(t, testConfig(testKeyspace), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping of an open store = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping after Close = %v, want ErrUnavailable", err)
	}
}
