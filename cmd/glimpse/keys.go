package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "keys", "Manages the API keys of the query API and the dashboard. A key reads the sites it was made\nfor (an admin key: every site) and is sent as \"Authorization: Bearer <key>\". Glimpse keeps\nonly a hash of each key: a key is shown once, when it is created.", keysCommands(), args, stdout, stderr)
}

func keysCommands() []subcommand {
	var (
		siteList listFlag
		admin    bool
		name     string
		quiet    bool
		asJSON   bool
	)
	return []subcommand{
		{
			name:    "create",
			short:   "Create an API key for some sites (--site) or all (--admin).",
			summary: "Creates an API key that reads the given sites (--site), or every site (--admin), and\nprints it: the only time it is shown.",
			flags: func(fs *flag.FlagSet) {
				fs.Var(&siteList, "site", "comma-separated `sites` the key may read (may be repeated), e.g. --site=example.com,shop.example.com")
				fs.BoolVar(&admin, "admin", false, "the key reads every site, present and future")
				fs.StringVar(&name, "name", "", "a note shown by glimpse keys list, e.g. who or what uses the key")
				fs.BoolVar(&quiet, "quiet", false, "print only the key (for scripts)")
			},
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 0, ""); err != nil {
					return err
				}
				if admin && len(siteList) > 0 {
					return fmt.Errorf("give either --site or --admin: an admin key reads every site")
				}
				if !admin && len(siteList) == 0 {
					return fmt.Errorf("name the sites the key may read (--site=example.com) or give --admin")
				}
				return sf.withStore(ctx, stderr, true, func(st store.Store) error {
					key, k, err := sites.NewKeyring(st, sites.Options{}).Create(ctx, sites.KeySpec{Sites: siteList, Admin: admin, Name: name})
					if err != nil {
						return err
					}
					dir := sites.NewDirectory(st, sites.Options{})
					for _, s := range k.Sites {
						if _, ok, err := dir.Get(ctx, s); err == nil && !ok {
							fmt.Fprintf(stderr, "note: %s is not in the site list yet (glimpse sites list); the key covers it all the same\n", s)
						}
					}
					if quiet {
						fmt.Fprintln(stdout, key)
						return nil
					}
					fmt.Fprintf(stdout, "Created API key %s for %s", k.ID, k.Scope())
					if k.Name != "" {
						fmt.Fprintf(stdout, " (%s)", k.Name)
					}
					fmt.Fprintf(stdout, ". It is shown only this once; Glimpse keeps only its hash:\n\n  %s\n\n", key)
					fmt.Fprintf(stdout, "Send it as \"Authorization: Bearer %s\",\nor open the dashboard with http://<glimpse address>/#key=%s\n", key, key)
					return nil
				})
			},
		},
		{
			name: "list", short: "List the API keys (never the keys themselves).", summary: "Lists the API keys: id, name, the sites each reads, when it was created. Never the keys.",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&asJSON, "json", false, "print the keys as a JSON array")
			},
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 0, ""); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					keys, err := sites.NewKeyring(st, sites.Options{}).List(ctx)
					if err != nil {
						return err
					}
					if asJSON {
						type listed struct {
							ID      string    `json:"id"`
							Name    string    `json:"name,omitempty"`
							Admin   bool      `json:"admin,omitempty"`
							Sites   []string  `json:"sites,omitempty"`
							Created time.Time `json:"created"`
						}
						out := []listed{}
						for _, k := range keys {
							out = append(out, listed{ID: k.ID, Name: k.Name, Admin: k.Admin, Sites: k.Sites, Created: k.Created})
						}
						enc := json.NewEncoder(stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(out)
					}
					if len(keys) == 0 {
						fmt.Fprintln(stdout, "no API keys yet: create one with glimpse keys create --site=example.com")
						return nil
					}
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tNAME\tREADS\tCREATED")
					for _, k := range keys {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Scope(), k.Created.UTC().Format(time.DateTime))
					}
					return tw.Flush()
				})
			},
		},
		{
			name: "revoke", short: "Revoke an API key.", args: " <id>",
			summary: "Revokes an API key, given by its id (see glimpse keys list) or as the whole key. Query\nservices stop accepting it within seconds.",
			run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
				if err := exactArgs(args, 1, "the key's id (see glimpse keys list)"); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					ok, err := sites.NewKeyring(st, sites.Options{}).Revoke(ctx, args[0])
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("there is no API key %q (see glimpse keys list)", args[0])
					}
					id := args[0]
					if kid, _, ok := sites.ParseKey(id); ok {
						id = kid
					}
					fmt.Fprintf(stdout, "revoked API key %s\n", id)
					return nil
				})
			},
		},
	}
}

// welcomeKey lets the first run of glimpse all take one command: when no admin key exists
// yet it creates one and prints a dashboard link carrying it (the way notebook servers print
// a token link). Only the key's hash is stored, so later starts say how to get a new one.
func welcomeKey(ctx context.Context, w io.Writer, meta store.Meta, addr string, g globalConfig) error {
	ring := sites.NewKeyring(meta, sites.Options{})
	has, err := ring.HasAdmin(ctx)
	if err != nil {
		return fmt.Errorf("look for an admin API key: %w", err)
	}
	if has {
		fmt.Fprintf(w, "Dashboard: http://%s/ asks for an API key: open the link printed on the first start, or stop glimpse\nand create a new one with: glimpse keys create --admin%s\n\n", addr, storeArgs(g))
		return nil
	}
	key, _, err := ring.Create(ctx, sites.KeySpec{Admin: true, Name: "dashboard link of glimpse all"})
	if err != nil {
		return fmt.Errorf("create the admin API key: %w", err)
	}
	fmt.Fprintf(w, "Dashboard: http://%s/#key=%s\n(the link carries a new admin API key, shown only this once: keep it)\n\n", addr, key)
	return nil
}

// storeArgs are the flags a glimpse keys or glimpse sites command needs to reach the store
// of g.
func storeArgs(g globalConfig) string {
	var b strings.Builder
	if g.Store != "" && g.Store != "pebble" {
		fmt.Fprintf(&b, " --store=%s", g.Store)
	}
	if g.DataDir != "./data" {
		fmt.Fprintf(&b, " --data-dir=%s", g.DataDir)
	}
	return b.String()
}
