package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/store/pebblestore"
	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

// subcommand is one verb of a command group such as `glimpse sites add`.
type subcommand struct {
	name    string
	args    string // the positional arguments, for the usage line
	short   string // one line for the command list
	summary string
	run     func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error
	flags   func(fs *flag.FlagSet) // command-specific flags, registered before the store's
}

func runSites(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "sites", "Manages the sites Glimpse counts: events for other sites, or from pages on hostnames a site\ndoes not allow, are dropped by the collector (unless collector.open-sites creates the site).", sitesCommands(), args, stdout, stderr)
}

// runGroup dispatches `glimpse <group> <verb> ...` to one subcommand.
func runGroup(ctx context.Context, group, summary string, subs []subcommand, args []string, stdout, stderr io.Writer) error {
	help := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: glimpse %s <command> [arguments] [--setting=value ...]\n\n%s\n\nCommands:\n", group, summary)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.short)
		}
		fmt.Fprintf(w, "\n`glimpse %s <command> --help` lists the settings of a command.\n", group)
	}
	if len(args) == 0 {
		help(stderr)
		return fmt.Errorf("name a command: %s", subNames(subs))
	}
	if isHelp(args[0]) || args[0] == "help" {
		help(stdout)
		return flag.ErrHelp
	}
	for _, s := range subs {
		if s.name != args[0] {
			continue
		}
		name := "glimpse " + group + " " + s.name
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(stdout)
		if s.flags != nil {
			s.flags(fs)
		}
		var sf storeFlags
		envFlags := sf.register(fs)
		fs.Usage = func() {
			w := fs.Output()
			fmt.Fprintf(w, "Usage: %s%s [--setting=value ...]\n\n%s\n", name, s.args, s.summary)
			if len(envFlags) < countFlags(fs) {
				fmt.Fprintf(w, "\nSettings:\n")
				printFlags(w, fs, func(f *flag.Flag) bool { return !envFlags[f.Name] }, envFlags)
			}
			fmt.Fprintf(w, "\nWhere the sites and keys are kept (each can also be set by the environment variable shown):\n")
			printFlags(w, fs, func(f *flag.Flag) bool { return envFlags[f.Name] }, envFlags)
		}
		pos, err := parseInterleaved(fs, args[1:], envFlags)
		if err != nil {
			if err != flag.ErrHelp {
				fs.SetOutput(stderr)
			}
			return err
		}
		sf.given = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { sf.given[f.Name] = true })
		return s.run(ctx, &sf, pos, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q: use %s (see glimpse %s --help)", args[0], subNames(subs), group)
}

func countFlags(fs *flag.FlagSet) int {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n
}

// printFlags prints the flags of fs that keep selects, with their defaults and, for those
// in env, the environment variable that also sets them.
func printFlags(w io.Writer, fs *flag.FlagSet, keep func(*flag.Flag) bool, env map[string]bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f) {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n      %s", usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		if env[f.Name] {
			fmt.Fprintf(w, "\n      env %s", envName(f.Name))
		}
		fmt.Fprintln(w)
	})
}

func subNames(subs []subcommand) string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// parseInterleaved parses flags that may come before or after the positional arguments
// (`glimpse sites add example.com --public`), then applies GLIMPSE_* environment variables
// to the flags in env that the command line did not set. It returns the positional
// arguments.
func parseInterleaved(fs *flag.FlagSet, args []string, env map[string]bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name := range env {
		if set[name] {
			continue
		}
		if v, ok := os.LookupEnv(envName(name)); ok {
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("bad environment setting %s=%q: %v", envName(name), v, err)
			}
		}
	}
	return pos, nil
}

// storeFlags are the settings that say which store holds the sites and keys; they are the
// same as the services' and also read from GLIMPSE_* variables, so a fleet's environment
// serves the commands too.
type storeFlags struct {
	g  globalConfig
	ec engineConfigs
	// given are the flags set on the command line (or by the environment).
	given map[string]bool
}

// register adds the store settings to fs and returns their names.
func (sf *storeFlags) register(fs *flag.FlagSet) map[string]bool {
	before := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { before[f.Name] = true })
	sf.ec = defaultEngineConfigs()
	fs.StringVar(&sf.g.Store, "store", "pebble", "store holding the sites and keys: pebble (the embedded store under --data-dir; stop glimpse all first) or cassandra (see --cassandra.*)")
	fs.StringVar(&sf.g.DataDir, "data-dir", "./data", "data directory of glimpse all (for --store=pebble)")
	fs.StringVar(&sf.g.LogLevel, "log.level", "warn", "log level: debug, info, warn or error")
	sf.ec.cassandra.RegisterFlags(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if !before[f.Name] {
			names[f.Name] = true
		}
	})
	return names
}

// errStoreLocked explains that the embedded store belongs to a running glimpse.
func errStoreLocked(dir string) error {
	return fmt.Errorf("the embedded store in %s is in use by a running glimpse (it admits one process at a time): stop glimpse all first, run this command, then start it again — or, in a fleet, run it with --store=cassandra, which needs no stop", dir)
}

// openStore opens the configured store for a command. create is false for commands that
// only read or delete: they do not create an embedded store that does not exist yet.
func (sf *storeFlags) openStore(ctx context.Context, stderr io.Writer, create bool) (store.Store, error) {
	dir := filepath.Join(sf.g.DataDir, "store")
	switch sf.g.Store {
	case "memory":
		return nil, errors.New("--store=memory keeps nothing once a process exits; sites and keys live in --store=pebble or --store=cassandra")
	case "pebble":
		if strings.TrimSpace(sf.g.DataDir) == "" {
			return nil, errors.New("--data-dir is empty: give the data directory of glimpse all")
		}
		if !create {
			if _, err := os.Stat(dir); errors.Is(err, iofs.ErrNotExist) {
				return nil, fmt.Errorf("there is no store in %s: check --data-dir (glimpse all creates the store on its first start)", dir)
			}
		}
	}
	log, err := telemetry.NewLogger(stderr, "text", sf.g.LogLevel)
	if err != nil {
		return nil, err
	}
	e := &engines{cfg: sf.g, ec: sf.ec, log: log, metrics: prometheus.NewRegistry()}
	st, err := e.openStore(ctx)
	if errors.Is(err, pebblestore.ErrLocked) {
		return nil, errStoreLocked(dir)
	}
	return st, err
}

// withStore opens the store, runs fn and closes the store.
func (sf *storeFlags) withStore(ctx context.Context, stderr io.Writer, create bool, fn func(st store.Store) error) error {
	st, err := sf.openStore(ctx, stderr, create)
	if err != nil {
		return err
	}
	err = fn(st)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// listFlag is a flag that takes comma-separated values and may be repeated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func exactArgs(args []string, n int, what string) error {
	if len(args) < n {
		return fmt.Errorf("missing %s (see --help)", what)
	}
	if len(args) > n {
		return fmt.Errorf("unexpected argument %q (settings are given as --name=value; see --help)", args[n])
	}
	return nil
}

func sitesCommands() []subcommand {
	var (
		hostnames listFlag
		timezone  string
		currency  string
		public    bool
		update    bool
		asJSON    bool
	)
	return []subcommand{
		{
			name: "add", short: "Add a site (or --update one).", args: " <domain>",
			summary: "Adds a site: the domain its tracker sends (data-site), the page hostnames whose events count\nfor it (default: the domain and its subdomains), its time zone, whether its numbers are\npublic (readable without an API key), and the currency its revenue is reported in.",
			flags: func(fs *flag.FlagSet) {
				fs.Var(&hostnames, "hostnames", "comma-separated page `hostnames` whose events count for the site: example.com (that hostname), *.example.com (its subdomains), * (any); default: the domain and its subdomains")
				fs.StringVar(&timezone, "timezone", "UTC", "IANA time zone of the site, such as Europe/Berlin")
				fs.StringVar(&currency, "currency", "", "ISO 4217 `code` revenue is reported in, such as EUR (goals and revenue: see glimpse sites goals --help)")
				fs.BoolVar(&public, "public", false, "let anyone read the site's numbers through the query API and the dashboard, without an API key")
				fs.BoolVar(&update, "update", false, "change a site that exists already: the settings given replace its own, the others keep their values")
			},
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 1, "the site's domain, e.g. glimpse sites add example.com"); err != nil {
					return err
				}
				s := sites.Site{Domain: args[0], Hostnames: hostnames, Timezone: timezone, Public: public, Currency: currency}
				return sf.withStore(ctx, stderr, true, func(st store.Store) error {
					dir := sites.NewDirectory(st, sites.Options{})
					added, err := dir.Add(ctx, s)
					verb := "added"
					if errors.Is(err, sites.ErrExists) {
						if !update {
							return fmt.Errorf("site %s exists already (see glimpse sites list): pass --update to change its settings", added.Domain)
						}
						s = added
						if sf.given["hostnames"] {
							s.Hostnames = hostnames
						}
						if sf.given["timezone"] {
							s.Timezone = timezone
						}
						if sf.given["currency"] {
							s.Currency = currency
						}
						if sf.given["public"] {
							s.Public = public
						}
						s.Auto = false
						added, err = dir.Put(ctx, s)
						verb = "updated"
					}
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "%s site %s: hostnames %s; time zone %s; %s\n", verb, added.Domain, strings.Join(added.Hostnames, ", "), added.Timezone, access(added))
					if added.Currency != "" {
						fmt.Fprintf(stdout, "Revenue is reported in %s.\n", added.Currency)
					}
					if !added.Public {
						fmt.Fprintf(stdout, "A key to read its numbers: glimpse keys create --site=%s\n", added.Domain)
					}
					return nil
				})
			},
		},
		{
			name: "list", short: "List the sites.", summary: "Lists the sites, with their hostnames, time zone and access.",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&asJSON, "json", false, "print the sites as a JSON array")
			},
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 0, ""); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					list, err := sites.NewDirectory(st, sites.Options{}).List(ctx)
					if err != nil {
						return err
					}
					if asJSON {
						if list == nil {
							list = []sites.Site{}
						}
						enc := json.NewEncoder(stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(list)
					}
					if len(list) == 0 {
						fmt.Fprintln(stdout, "no sites yet: add one with glimpse sites add example.com")
						return nil
					}
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "DOMAIN\tHOSTNAMES\tTIMEZONE\tACCESS\tCREATED")
					for _, s := range list {
						created := s.Created.UTC().Format(time.DateTime)
						if s.Auto {
							created += " (first event)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Domain, strings.Join(s.Hostnames, ","), s.Timezone, access(s), created)
					}
					return tw.Flush()
				})
			},
		},
		{
			name: "remove", short: "Stop counting a site (its data stays; delete removes it).", args: " <domain>",
			summary: "Removes a site: the collector drops its events from then on. Its numbers stay in the store,\nand API keys naming it keep their scope (glimpse sites delete removes those too).",
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 1, "the site's domain, e.g. glimpse sites remove example.com"); err != nil {
					return err
				}
				domain, err := sites.NormalizeDomain(args[0])
				if err != nil {
					return fmt.Errorf("site %q is not valid: %v", args[0], err)
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					ok, err := sites.NewDirectory(st, sites.Options{}).Remove(ctx, domain)
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("there is no site %s (see glimpse sites list)", domain)
					}
					fmt.Fprintf(stdout, "removed site %s; its numbers stay in the store\n", domain)
					return nil
				})
			},
		},
		sitesDeleteCommand(), // sites_delete.go
		mpSecretCommand(),    // sites_mp.go
		sitesGoalsCommand(),  // sites_goals.go
	}
}

func access(s sites.Site) string {
	if s.Public {
		return "public"
	}
	return "API key"
}
