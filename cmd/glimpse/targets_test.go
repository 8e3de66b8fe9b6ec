package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

// A service setting that cannot work fails glimpse before it opens anything: no data
// directory created, no engine dialled, and the message names the setting.
func TestBadServiceSettingFailsBeforeEnginesOpen(t *testing.T) {
	for _, c := range []struct {
		target targetSpec
		flag   string
		want   string
	}{
		{targetAll, "--processor.flush-events=-1", "processor.flush-events must not be negative"},
		{targetAll, "--collector.max-sites=0", "collector.max-sites is 0"},
		{targetAll, "--query.timeout=0s", "query.timeout must be positive"},
		{targetAll, "--gateway.retries=-1", "gateway.retries must not be negative"},
		{targetProcessor, "--processor.lateness=0s", "processor.lateness must be positive"},
		{targetCollector, "--collector.publish-timeout=0s", "collector.publish-timeout is 0s"},
	} {
		t.Run(c.target.name+" "+c.flag, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			var stderr bytes.Buffer
			args := []string{"--addr=127.0.0.1:0", "--data-dir=" + dataDir, "--log.level=error", c.flag}
			err := runTarget(c.target)(context.Background(), args, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("glimpse %s %s: error %v, want one saying %q", c.target.name, c.flag, err, c.want)
			}
			if _, statErr := os.Stat(dataDir); !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("glimpse %s %s created %s before failing on the setting (stat: %v)", c.target.name, c.flag, dataDir, statErr)
			}
		})
	}
}
