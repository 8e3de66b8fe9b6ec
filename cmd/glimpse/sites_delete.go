package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

// confirmInput is where `glimpse sites delete` reads its confirmation; tests replace it.
var confirmInput io.Reader = os.Stdin

// maxConfirmLen bounds the confirmation line read.
const maxConfirmLen = 1024

func sitesDeleteCommand() subcommand {
	var yes, force bool
	return subcommand{
		name: "delete", short: "Delete a site and all its data.", args: " <domain>",
		summary: "Deletes a site and everything stored for it: its entry in the site list, its rollup rows of\n" +
			"every granularity, its stored events, the API keys that read only this site (keys that\n" +
			"read other sites too lose this one; admin keys stay) and its Measurement Protocol\n" +
			"secrets. It cannot be undone. It asks to type the domain unless --yes is given.\n\n" +
			"With --store=pebble, stop glimpse all first (the embedded store admits one process).\n" +
			"Events of the site still waiting in the bus are counted after the deletion: run the\n" +
			"command again with --force once the processors caught up (see docs/data.md).",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&yes, "yes", false, "delete without asking for confirmation")
			fs.BoolVar(&force, "force", false, "delete the data even when the domain is not in the site list (finishes an interrupted delete, or removes the numbers of a site removed with glimpse sites remove)")
		},
		run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
			if err := exactArgs(args, 1, "the site's domain, e.g. glimpse sites delete example.com"); err != nil {
				return err
			}
			domain, err := sites.NormalizeDomain(args[0])
			if err != nil {
				return fmt.Errorf("site %q is not valid: %v", args[0], err)
			}
			log, err := telemetry.NewLogger(stderr, "text", sf.g.LogLevel)
			if err != nil {
				return err
			}
			return sf.withStore(ctx, stderr, false, func(st store.Store) error {
				_, found, err := sites.NewDirectory(st, sites.Options{}).Get(ctx, domain)
				if err != nil {
					return err
				}
				if !found && !force {
					return fmt.Errorf("there is no site %s (see glimpse sites list); to delete data left by a removed site or an interrupted delete, pass --force", domain)
				}
				if !yes {
					if err := confirmDelete(domain, found, stderr); err != nil {
						return err
					}
				}
				res, err := sites.DeleteSite(ctx, st, domain, sites.DeleteOptions{Force: force})
				if err != nil {
					if errors.Is(err, sites.ErrNoSite) {
						return fmt.Errorf("there is no site %s (see glimpse sites list)", domain)
					}
					log.Error("site deletion failed", "site", domain, "store", sf.g.Store, "err", err)
					return fmt.Errorf("%w (what was deleted so far stays deleted: run glimpse sites delete %s --force to finish)", err, domain)
				}
				// Deleting data is logged at warn, so the line shows at the commands' default
				// log level.
				log.Warn("site deleted", "site", domain, "store", sf.g.Store, "had_record", res.HadRecord,
					slog.Any("deleted", res.Data), "keys_revoked", len(res.KeysRevoked), "keys_narrowed", len(res.KeysNarrowed),
					"mp_secrets", res.MPSecrets)
				printDeleteResult(stdout, res)
				return nil
			})
		},
	}
}

// confirmDelete asks to type the domain and fails unless that is what comes back.
func confirmDelete(domain string, found bool, prompt io.Writer) error {
	what := "site " + domain
	if !found {
		what = "the data of " + domain + " (not in the site list)"
	}
	fmt.Fprintf(prompt, "This deletes %s and all its numbers, for good.\nType the domain to confirm: ", what)
	line, err := bufio.NewReader(io.LimitReader(confirmInput, maxConfirmLen)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return errors.New("not confirmed, nothing deleted: type the domain when asked, or pass --yes")
	}
	if strings.TrimSpace(line) != domain {
		return fmt.Errorf("not confirmed (%q is not %s), nothing deleted", strings.TrimSpace(line), domain)
	}
	return nil
}

func printDeleteResult(w io.Writer, res sites.DeleteResult) {
	record := "removed from the site list"
	if !res.HadRecord {
		record = "was not in the site list"
	}
	fmt.Fprintf(w, "deleted site %s (%s)\n", res.Domain, record)
	fmt.Fprintf(w, "  rollup rows:    %d (minute %d, hour %d, day %d)\n", res.Data.TotalRows(),
		res.Data.Rows[store.Minute], res.Data.Rows[store.Hour], res.Data.Rows[store.Day])
	fmt.Fprintf(w, "  stored events:  %d\n", res.Data.Events)
	fmt.Fprintf(w, "  API keys:       %d revoked%s, %d narrowed to their other sites%s\n",
		len(res.KeysRevoked), idList(res.KeysRevoked), len(res.KeysNarrowed), idList(res.KeysNarrowed))
	fmt.Fprintf(w, "  MP secrets:     %d deleted\n", res.MPSecrets)
}

func idList(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " (" + strings.Join(ids, ", ") + ")"
}
