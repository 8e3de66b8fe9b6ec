package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/glimpse-analytics/glimpse/internal/store/cassandra"
	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

// runMigrate creates or upgrades the store's schema. Services refuse to start on a schema
// older than they need; this is the step that brings it up to date, run once per upgrade
// from one place (concurrent schema changes can leave a Cassandra cluster in disagreement).
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glimpse migrate", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = usage(fs, "migrate", "Creates the store's keyspace and tables, or applies the schema versions this binary\nneeds that the store lacks. Running it again changes nothing.")
	storeName := fs.String("store", "cassandra", "store engine to migrate: cassandra (pebble needs no migration)")
	logFormat := fs.String("log.format", "text", "log format: text or json")
	logLevel := fs.String("log.level", "info", "log level: debug, info, warn or error")
	cfg := cassandra.DefaultConfig()
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		if err != flag.ErrHelp {
			fs.SetOutput(stderr)
		}
		return err
	}
	log, err := telemetry.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	switch *storeName {
	case "pebble", "memory":
		fmt.Fprintf(stdout, "the %s store needs no migration: it is created and upgraded on start\n", *storeName)
		return nil
	case "cassandra":
	default:
		return fmt.Errorf("unknown --store %q: use cassandra", *storeName)
	}
	log.Info("migrating cassandra schema", "hosts", cfg.Hosts, "keyspace", cfg.Keyspace)
	res, err := cassandra.Migrate(ctx, cfg)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(stdout, "keyspace %s is at schema version %d: nothing to do\n", res.Keyspace, res.To)
		return nil
	}
	fmt.Fprintf(stdout, "keyspace %s migrated from schema version %d to %d (applied %v)\n", res.Keyspace, res.From, res.To, res.Applied)
	return nil
}
