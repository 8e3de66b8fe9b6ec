package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// healthcheckBodyLimit bounds how much of a failing answer is quoted in the error: enough for
// the reason /readyz gives, never a whole page.
const healthcheckBodyLimit = 512

// runHealthcheck asks a Glimpse endpoint (by default /readyz of a target on this machine)
// whether it is ready, and exits 0 only on a 2xx answer. It exists for container
// healthchecks: the release image has no shell and no curl, only this binary.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glimpse healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = usage(fs, "healthcheck", "Calls a health endpoint and exits 0 when it answers 2xx, 1 otherwise; for container\nhealthchecks (the image has no shell or curl).")
	rawURL := fs.String("url", "http://127.0.0.1:8080/readyz", "URL to call: http://host:port/path, usually /readyz (ready to serve) or /healthz (alive) of a target")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the call may take before the check fails (duration)")
	if err := parseFlags(fs, args); err != nil {
		if err != flag.ErrHelp {
			fs.SetOutput(stderr)
		}
		return err
	}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url=%q is not an http(s) URL: give one such as http://127.0.0.1:8081/readyz", *rawURL)
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout=%s must be positive, e.g. 3s", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("--url=%q: %v", *rawURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s did not answer within %s (raise --timeout if the service is just slow)", u, *timeout)
		}
		return fmt.Errorf("%s: %v (is the target running and listening on that port?)", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthcheckBodyLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", u, strings.TrimSpace(string(body)))
	return nil
}
