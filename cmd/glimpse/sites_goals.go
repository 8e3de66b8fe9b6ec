package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/glimpse-analytics/glimpse/internal/sites"
	"github.com/glimpse-analytics/glimpse/internal/store"
)

// sitesGoalsCommand is `glimpse sites goals add|list|remove <site>`: the conversions the
// query API reports as event:goal.
func sitesGoalsCommand() subcommand {
	var (
		eventName, page, name string
		asJSON                bool
	)
	const usage = "use glimpse sites goals add <site> --event=NAME | --page=PATTERN [--name=...], list <site>, or remove <site> --name=... | --event=NAME | --page=PATTERN"
	return subcommand{
		name: "goals", args: " add|list|remove <domain>",
		short: "Add, list or remove a site's goals (conversions).",
		summary: fmt.Sprintf("Manages a site's goals: the conversions the query API reports under the dimension event:goal,\n"+
			"with the metrics conversion_rate, events (completions) and revenue. A goal is a custom event\n"+
			"(--event=Signup) or a page pattern (--page=/pricing): in a pattern * stands for any characters\n"+
			"within one path segment and ** for any characters across segments (/blog/* matches /blog/go,\n"+
			"/blog/** also /blog/go/part-2). A site has at most %d goals. Query services notice a change\n"+
			"within a few seconds.\n\n"+
			"  add <domain>      add a goal (--event or --page; --name sets the name shown, default the\n"+
			"                    event name or \"Visit <pattern>\")\n"+
			"  list <domain>     list the goals (--json)\n"+
			"  remove <domain>   remove the goal given by --name, --event or --page", sites.MaxGoals),
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&eventName, "event", "", "add/remove: the custom event `name` that completes the goal, e.g. Signup")
			fs.StringVar(&page, "page", "", "add/remove: the page path `pattern` whose page views complete the goal, e.g. /pricing or /blog/*")
			fs.StringVar(&name, "name", "", "add: the goal's name in query answers; remove: the name of the goal to remove")
			fs.BoolVar(&asJSON, "json", false, "list: print the goals as a JSON array")
		},
		run: func(ctx context.Context, sf *storeFlags, args []string, stdout, stderr io.Writer) error {
			if len(args) == 0 {
				return fmt.Errorf("name a command: %s", usage)
			}
			verb, rest := args[0], args[1:]
			if verb != "add" && verb != "list" && verb != "remove" {
				return fmt.Errorf("unknown goals command %q: %s", verb, usage)
			}
			if err := exactArgs(rest, 1, "the site's domain, e.g. glimpse sites goals "+verb+" example.com"); err != nil {
				return err
			}
			domain, err := sites.NormalizeDomain(rest[0])
			if err != nil {
				return fmt.Errorf("site %q is not valid: %v", rest[0], err)
			}
			return sf.withStore(ctx, stderr, false, func(st store.Store) error {
				dir := sites.NewDirectory(st, sites.Options{})
				switch verb {
				case "add":
					g, err := dir.AddGoal(ctx, domain, sites.Goal{Name: name, Event: eventName, Page: page})
					if err != nil {
						return goalError(err, domain)
					}
					fmt.Fprintf(stdout, "added goal %q to %s: %s %s\n", g.Name, domain, g.Kind(), g.Definition())
					return nil
				case "remove":
					if name == "" && eventName == "" && page == "" {
						return errors.New("say which goal to remove: --name=..., --event=NAME or --page=PATTERN (see glimpse sites goals list " + domain + ")")
					}
					g, ok, err := dir.RemoveGoal(ctx, domain, sites.Goal{Name: name, Event: eventName, Page: page})
					if err != nil {
						return goalError(err, domain)
					}
					if !ok {
						return fmt.Errorf("site %s has no such goal (see glimpse sites goals list %s)", domain, domain)
					}
					fmt.Fprintf(stdout, "removed goal %q of %s\n", g.Name, domain)
					return nil
				}
				s, ok, err := dir.Get(ctx, domain)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("there is no site %s (see glimpse sites list)", domain)
				}
				if asJSON {
					list := s.Goals
					if list == nil {
						list = []sites.Goal{}
					}
					enc := json.NewEncoder(stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(list)
				}
				if len(s.Goals) == 0 {
					fmt.Fprintf(stdout, "no goals for %s yet: add one with glimpse sites goals add %s --event=Signup\n", domain, domain)
					return nil
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tDEFINITION")
				for _, g := range s.Goals {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Name, g.Kind(), g.Definition())
				}
				return tw.Flush()
			})
		},
	}
}

func goalError(err error, domain string) error {
	if errors.Is(err, sites.ErrNoSuchSite) {
		return fmt.Errorf("there is no site %s: add it first with glimpse sites add %s", domain, domain)
	}
	return err
}
