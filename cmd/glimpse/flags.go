package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

// envName is the environment variable that sets flag name: GLIMPSE_ + the name in upper
// case with dots and dashes as underscores (collector.max-body-bytes →
// GLIMPSE_COLLECTOR_MAX_BODY_BYTES).
func envName(flagName string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "GLIMPSE_" + strings.ToUpper(r.Replace(flagName))
}

// parseFlags applies, in order of precedence: flags given on the command line, then
// GLIMPSE_* environment variables, then the defaults the flags were registered with.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (settings are given as --name=value; see --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("bad environment setting: %s", strings.Join(errs, "; "))
	}
	return nil
}

// usage prints a target's help: what it runs, then every setting with its default and the
// environment variable that also sets it.
func usage(fs *flag.FlagSet, target, summary string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: glimpse %s [--setting=value ...]\n\n%s\n\nSettings (each can also be set by the environment variable shown):\n", target, summary)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "\n      %s", help)
			if f.DefValue != "" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "\n      env %s\n", envName(f.Name))
		})
	}
}
