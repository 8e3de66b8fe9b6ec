package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// mpSecretCommand is `glimpse sites mp-secret create|list|revoke <site>`: the API secrets
// that let a backend send server-side events to POST /mp/collect (GA4's Measurement
// Protocol).
func mpSecretCommand() subcommand {
	var (
		name   string
		quiet  bool
		asJSON bool
	)
	const usage = "use glimpse sites mp-secret create <site> | list <site> | revoke <site> <id>"
	return subcommand{
		name: "mp-secret", args: " create|list|revoke <domain> [<id>]",
		short: "Create, list or revoke a site's Measurement Protocol API secrets.",
		summary: "Manages the API secrets of server-side events: a backend sends them to\n" +
			"POST /mp/collect?measurement_id=<domain>&api_secret=<secret> in the shape of Google\n" +
			"Analytics 4's Measurement Protocol. Glimpse keeps only a hash of each secret: a secret is\n" +
			"shown once, when it is created. Collectors notice a revoked secret within\n" +
			"collector.sites-refresh.\n\n" +
			"  create <domain>        create a secret for a site (--name, --quiet)\n" +
			"  list <domain>          list a site's secrets (never the secrets themselves; --json)\n" +
			"  revoke <domain> <id>   revoke a secret, given by its id or as the whole secret",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "create: a note shown by list, e.g. which backend uses the secret")
			fs.BoolVar(&quiet, "quiet", false, "create: print only the secret (for scripts)")
			fs.BoolVar(&asJSON, "json", false, "list: print the secrets as a JSON array")
		},
		run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
			if len(args) == 0 {
				return fmt.Errorf("name a command: %s", usage)
			}
			verb, rest := args[0], args[1:]
			switch verb {
			case "create":
				if err := exactArgs(rest, 1, "the site's domain, e.g. glimpse sites mp-secret create example.com"); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					return createMPSecret(ctx, st, rest[0], name, quiet, stdout)
				})
			case "list":
				if err := exactArgs(rest, 1, "the site's domain, e.g. glimpse sites mp-secret list example.com"); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					return listMPSecrets(ctx, st, rest[0], asJSON, stdout)
				})
			case "revoke":
				if err := exactArgs(rest, 2, "the site's domain and the secret's id, e.g. glimpse sites mp-secret revoke example.com 0123456789ab"); err != nil {
					return err
				}
				return sf.withStore(ctx, stderr, false, func(st store.Store) error {
					ok, err := sites.NewMPSecrets(st, sites.Options{}).Revoke(ctx, rest[0], rest[1])
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("site %s has no Measurement Protocol secret %q (see glimpse sites mp-secret list %s)", rest[0], rest[1], rest[0])
					}
					id := rest[1]
					if sid, _, ok := sites.ParseMPSecret(id); ok {
						id = sid
					}
					fmt.Fprintf(stdout, "revoked Measurement Protocol secret %s of %s\n", id, rest[0])
					return nil
				})
			}
			return fmt.Errorf("unknown mp-secret command %q: %s", verb, usage)
		},
	}
}

func createMPSecret(ctx context.Context, st store.Store, site, name string, quiet bool, stdout io.Writer) error {
	domain, err := sites.NormalizeDomain(site)
	if err != nil {
		return fmt.Errorf("site %q is not valid: %v", site, err)
	}
	if _, ok, err := sites.NewDirectory(st, sites.Options{}).Get(ctx, domain); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("there is no site %s: add it first with glimpse sites add %s", domain, domain)
	}
	secret, s, err := sites.NewMPSecrets(st, sites.Options{}).Create(ctx, domain, name)
	if err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(stdout, secret)
		return nil
	}
	fmt.Fprintf(stdout, "Created Measurement Protocol secret %s for %s", s.ID, s.Site)
	if s.Name != "" {
		fmt.Fprintf(stdout, " (%s)", s.Name)
	}
	fmt.Fprintf(stdout, ". It is shown only this once; Glimpse keeps only its hash:\n\n  %s\n\n", secret)
	fmt.Fprintf(stdout, "Send server-side events to\n  POST http://<glimpse address>/mp/collect?measurement_id=%s&api_secret=%s\n", s.Site, secret)
	return nil
}

func listMPSecrets(ctx context.Context, st store.Store, site string, asJSON bool, stdout io.Writer) error {
	list, err := sites.NewMPSecrets(st, sites.Options{}).List(ctx, site)
	if err != nil {
		return err
	}
	if asJSON {
		type listed struct {
			ID      string    `json:"id"`
			Site    string    `json:"site"`
			Name    string    `json:"name,omitempty"`
			Created time.Time `json:"created"`
		}
		out := []listed{}
		for _, s := range list {
			out = append(out, listed{ID: s.ID, Site: s.Site, Name: s.Name, Created: s.Created})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "no Measurement Protocol secrets for %s yet: create one with glimpse sites mp-secret create %s\n", site, site)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.ID, s.Name, s.Created.UTC().Format(time.DateTime))
	}
	return tw.Flush()
}
