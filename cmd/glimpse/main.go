// Command glimpse is the whole of Glimpse in one binary. The first argument names a target:
// `all` (the default) runs every service in one process on embedded engines; `gateway`,
// `collector`, `processor` and `query` run one service each, for the fleet; `loadgen` sends
// synthetic traffic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"all", "Run every service in one process on embedded engines (the default).", runTarget(targetAll)},
		{"gateway", "Run the edge router: routes beacons to collectors and API calls to query services.", runTarget(targetGateway)},
		{"collector", "Run a collector: validates and enriches beacons and publishes them to the bus.", runTarget(targetCollector)},
		{"processor", "Run a processor: sessionises and aggregates events from the bus into the store.", runTarget(targetProcessor)},
		{"query", "Run a query service: answers the query API from the store.", runTarget(targetQuery)},
		{"migrate", "Create or upgrade the store's schema (Cassandra).", runMigrate},
		{"sites", "Add, list, remove or delete the sites Glimpse counts; their goals and MP secrets (glimpse sites --help).", runSites},
		{"keys", "Create, list or revoke API keys of the query API and dashboard (glimpse keys --help).", runKeys},
		{"healthcheck", "Exit 0 when a target's /readyz (or another URL) answers 2xx; for container healthchecks.", runHealthcheck},
		{"loadgen", "Send realistic synthetic traffic to a running Glimpse and report what was acknowledged.", runLoadgen},
		{"version", "Print the version.", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "glimpse", version)
			return nil
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	} else if len(args) == 1 && isHelp(args[0]) {
		// a bare `glimpse --help` lists the targets; `glimpse all --help` the settings
		name = "help"
	}
	if name == "help" {
		printHelp(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, args, stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(stderr, "glimpse %s: %v\n", name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "glimpse: unknown target %q\n\n", name)
	printHelp(stderr)
	return 2
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

func printHelp(w io.Writer) {
	fmt.Fprintf(w, "Glimpse %s: self-hosted web analytics.\n\nUsage: glimpse [target] [--setting=value ...]\n\nTargets:\n", version)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n`glimpse <target> --help` lists the settings of a target. Every setting can also be given\nas an environment variable: GLIMPSE_ + its name in capitals, dots and dashes as underscores.\n")
}
