package gateway

import (
	"flag"
	"io"
	"testing"
)

// The client-address rule itself is tested in internal/clientip; this checks the gateway's
// own setting: its name, its default, and that it reaches the config.
func TestTrustedProxiesFlag(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.RegisterFlags(fs)
	f := fs.Lookup("gateway.trusted-proxies")
	if f == nil {
		t.Fatal("no gateway.trusted-proxies flag")
	}
	if f.DefValue != "127.0.0.0/8,::1/128" {
		t.Errorf("default %q; want the loopback networks", f.DefValue)
	}
	if err := fs.Parse([]string{"-gateway.trusted-proxies", "10.0.0.0/8, 192.168.1.5"}); err != nil {
		t.Fatal(err)
	}
	if got := cfg.TrustedProxies.String(); got != "10.0.0.0/8,192.168.1.5/32" {
		t.Errorf("parsed %q", got)
	}
	if err := fs.Parse([]string{"-gateway.trusted-proxies", "10.0.0.0/33"}); err == nil {
		t.Error("an invalid CIDR was accepted")
	}
	if err := fs.Parse([]string{"-gateway.trusted-proxies", ""}); err != nil || len(cfg.TrustedProxies) != 0 {
		t.Errorf("empty list: %v %v", cfg.TrustedProxies, err)
	}
}
