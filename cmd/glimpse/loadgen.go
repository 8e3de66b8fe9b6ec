package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/loadgen"
)

func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glimpse loadgen", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = usage(fs, "loadgen", "Sends synthetic visits (each from its own visitor: address via X-Forwarded-For, browser via\nUser-Agent; several pages, referrers, UTM tags, Signup events) to a running Glimpse and reports\nsent / acknowledged / failed beacons and latency percentiles. With --expect it prints the numbers\nthe query API must return for what was acknowledged (exact when nothing failed).")
	target := fs.String("target", "http://localhost:8080", "base URL of the gateway (or a collector)")
	events := fs.Int("events", 10000, "beacons to send (whole visits, so slightly more)")
	sites := fs.String("sites", "example.com", "comma-separated site ids to spread visits over")
	concurrency := fs.Int("concurrency", 32, "visits in flight at once")
	rateLimit := fs.Float64("rate", 0, "beacons per second over all workers; 0 sends as fast as the server answers")
	duration := fs.Duration("duration", 0, "stop starting visits after this long; 0 sends all of --events")
	seed := fs.Uint64("seed", 1, "seed of the traffic plan: the same seed sends the same traffic")
	offset := fs.Int("visitor-offset", 0, "first visitor number, so runs with the same seed can send new visitors")
	retries := fs.Int("retries", 0, "resend a beacon after 503/429/connection errors up to this often (with the same event id, so Glimpse counts it once)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	expect := fs.Bool("expect", false, "print the expected query results as JSON after sending")
	if err := parseFlags(fs, args); err != nil {
		if err != flag.ErrHelp {
			fs.SetOutput(stderr)
		}
		return err
	}
	if *events <= 0 || *concurrency <= 0 {
		return fmt.Errorf("--events and --concurrency must be positive")
	}
	plan := loadgen.NewPlan(loadgen.Options{Sites: splitList(*sites), Events: *events, Seed: *seed, VisitorOffset: *offset})
	fmt.Fprintf(stderr, "sending %d beacons in %d visits to %s (concurrency %d, rate %s)\n",
		plan.Events(), len(plan.Visits), *target, *concurrency, rateString(*rateLimit))
	lastPrint := time.Now()
	rep := loadgen.Send(ctx, plan, loadgen.SendOptions{
		Target: strings.TrimRight(*target, "/"), Concurrency: *concurrency, Rate: *rateLimit,
		Duration: *duration, Timeout: *timeout, Retries: *retries,
		Progress: func(sent, acked, failed int64) {
			if time.Since(lastPrint) > 2*time.Second {
				lastPrint = time.Now()
				fmt.Fprintf(stderr, "  %d sent, %d acknowledged, %d failed\n", sent, acked, failed)
			}
		},
	})
	fmt.Fprintf(stdout, "sent %d  acknowledged %d  failed %d  in %s  (%.0f acknowledged/s)\n",
		rep.Sent, rep.Acked, rep.Failed, rep.Elapsed.Round(time.Millisecond), rep.Rate())
	fmt.Fprintf(stdout, "latency p50 %s  p90 %s  p99 %s  max %s\n",
		rep.Percentile(50), rep.Percentile(90), rep.Percentile(99), rep.Percentile(100))
	for cause, n := range rep.Errors {
		fmt.Fprintf(stdout, "  failed: %d × %s\n", n, cause)
	}
	if *expect {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(plan.Expect(rep.AckedBeacon)); err != nil {
			return err
		}
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d of %d beacons were not acknowledged", rep.Failed, rep.Sent)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func rateString(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f/s", r)
}
