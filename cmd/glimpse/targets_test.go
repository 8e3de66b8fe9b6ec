package main

import "testing"

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
