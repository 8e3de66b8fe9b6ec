package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/bus/embedded"
	kafkabus "github.com/glimpse-analytics/glimpse/internal/bus/kafka"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/cassandra"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/services/registry/consul"
)

// engineConfigs holds the settings of the fleet engines; only the configured ones are used.
type engineConfigs struct {
	kafka     kafkabus.Config
	cassandra cassandra.Config
	consul    consul.Config
}

func defaultEngineConfigs() engineConfigs {
	return engineConfigs{kafka: kafkabus.DefaultConfig(), cassandra: cassandra.DefaultConfig(), consul: consul.DefaultConfig()}
}

// engines opens the implementation each interface is configured to use. Services never see
// which one they got; this is the only place that names concrete engines.
type engines struct {
	cfg     globalConfig
	ec      engineConfigs
	log     *slog.Logger
	metrics prometheus.Registerer
}

func (e *engines) dataDir(sub string) (string, error) {
	dir := filepath.Join(e.cfg.DataDir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create data directory %s: %w (choose a writable place with --data-dir)", dir, err)
	}
	return dir, nil
}

func (e *engines) openStore(ctx context.Context) (store.Store, error) {
	switch e.cfg.Store {
	case "pebble":
		dir, err := e.dataDir("store")
		if err != nil {
			return nil, err
		}
		e.log.Info("opening embedded store", "dir", dir)
		// The retention.* settings are registered with the Cassandra ones (they are its TTLs)
		// but apply to every engine: the embedded store enforces them by a background sweep.
		mem := currentEngineMemory()
		return pebblestore.Open(dir, pebblestore.Options{Logger: e.log.With("engine", "pebble-store"), Metrics: e.metrics, Retention: e.ec.cassandra.Retention(),
			CacheSize: mem.storeCache, MemTableSize: mem.storeMemTable})
	case "memory":
		e.log.Warn("using the in-memory store: every number is lost when the process exits")
		return memstore.New(), nil
	case "cassandra":
		e.log.Info("connecting to cassandra", "hosts", e.ec.cassandra.Hosts, "keyspace", e.ec.cassandra.Keyspace)
		return cassandra.Open(ctx, e.ec.cassandra, cassandra.Options{Logger: e.log.With("engine", "cassandra-store"), Metrics: e.metrics})
	}
	return nil, fmt.Errorf("unknown --store %q: use pebble, memory or cassandra", e.cfg.Store)
}

func (e *engines) openBus() (bus.Bus, error) {
	switch e.cfg.Bus {
	case "embedded":
		dir, err := e.dataDir("bus")
		if err != nil {
			return nil, err
		}
		e.log.Info("opening embedded bus", "dir", dir)
		mem := currentEngineMemory()
		return embedded.Open(dir, embedded.Options{Partitions: e.cfg.BusPartitions, Logger: e.log.With("engine", "embedded-bus"), Metrics: e.metrics,
			CacheSize: mem.busCache, MemTableSize: mem.busMemTable, MinSyncInterval: e.cfg.BusSyncInterval})
	case "kafka":
		e.log.Info("connecting to kafka", "brokers", e.ec.kafka.Brokers)
		return kafkabus.New(e.ec.kafka, kafkabus.Options{Logger: e.log, Metrics: e.metrics})
	}
	return nil, fmt.Errorf("unknown --bus %q: use embedded or kafka", e.cfg.Bus)
}

func (e *engines) openRegistry() (registry.Registry, error) {
	switch e.cfg.Registry {
	case "", "inproc":
		return registry.NewInProc(), nil
	case "consul":
		return consul.New(e.ec.consul, consul.Options{Logger: e.log.With("engine", "consul-registry"), Metrics: e.metrics})
	}
	return nil, fmt.Errorf("unknown --registry %q: use inproc or consul", e.cfg.Registry)
}
