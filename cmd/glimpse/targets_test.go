package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"regexp"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "256MiB": 256 << 20, "1GiB": 1 << 30, "512KiB": 512 << 10, "1000": 1000, " 2 GiB ": 2 << 30} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "abc", "-1MiB", "1.5GiB", "10MB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) accepted", bad)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("collector.max-body-bytes"); got != "GLIMPSE_COLLECTOR_MAX_BODY_BYTES" {
		t.Fatalf("envName = %q", got)
	}
}

// glimpse all runs its processor on the cores that take the beacons, so it flushes and
// checkpoints less often (but early once 8,192 events wait) and caches fewer rows than a
// processor of the fleet; --help says so.
func TestProcessorDefaultsPerTarget(t *testing.T) {
	for _, c := range []struct {
		target                                        targetSpec
		flush, checkpoint, maxCachedRows, flushEvents string
	}{
		{targetAll, "2s", "10s", "10000", "8192"},
		{targetProcessor, "1s", "5s", "100000", "0"},
	} {
		var out bytes.Buffer
		err := runTarget(c.target)(context.Background(), []string{"--help"}, &out, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("glimpse %s --help: %v", c.target.name, err)
		}
		for flagName, want := range map[string]string{"processor.flush-interval": c.flush, "processor.checkpoint-interval": c.checkpoint, "processor.max-cached-rows": c.maxCachedRows, "processor.flush-events": c.flushEvents} {
			re := regexp.MustCompile(`--` + regexp.QuoteMeta(flagName) + ` [^\n]*\n[^\n]*\(default "([^"]*)"\)`)
			m := re.FindStringSubmatch(out.String())
			if m == nil || m[1] != want {
				t.Errorf("glimpse %s --help: --%s default %v, want %q", c.target.name, flagName, m, want)
			}
		}
	}
}
