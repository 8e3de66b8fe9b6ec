package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHealthcheck(t *testing.T) {
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	}))
	defer ready.Close()
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: services are starting or stopping\n" + strings.Repeat("x", 10_000)))
	}))
	defer notReady.Close()
	hanging := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hanging.Close()

	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"ready", []string{"--url=" + ready.URL + "/readyz"}, 0, ""},
		{"not ready", []string{"--url=" + notReady.URL + "/readyz"}, 1, "503 Service Unavailable: not ready: services are starting"},
		{"wrong path", []string{"--url=" + ready.URL + "/nope"}, 1, "404"},
		{"nothing listening", []string{"--url=http://127.0.0.1:1/readyz"}, 1, "is the target running"},
		{"too slow", []string{"--url=" + hanging.URL + "/readyz", "--timeout=100ms"}, 1, "did not answer within 100ms"},
		{"not a URL", []string{"--url=127.0.0.1:8080/readyz"}, 1, "is not an http(s) URL"},
		{"bad timeout", []string{"--url=" + ready.URL, "--timeout=0s"}, 1, "must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"healthcheck"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.wantCode, stderr.String())
			}
			if tc.wantErr != "" && !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantErr)
			}
			if len(stderr.String()) > 2*healthcheckBodyLimit {
				t.Errorf("stderr is %d bytes: the answer's body must be quoted only up to %d", len(stderr.String()), healthcheckBodyLimit)
			}
		})
	}
}
