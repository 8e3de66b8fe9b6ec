package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	loopback := Loopback()
	gw := PrefixList{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}
	cases := []struct {
		name    string
		remote  string
		xff     []string
		trusted PrefixList
		want    string
	}{
		{"direct", "198.51.100.1:1234", nil, loopback, "198.51.100.1"},
		{"untrusted peer's XFF ignored", "198.51.100.1:1234", []string{"1.2.3.4"}, loopback, "198.51.100.1"},
		{"trusted peer without XFF", "127.0.0.1:1234", nil, loopback, "127.0.0.1"},
		{"trusted peer", "127.0.0.1:1234", []string{"198.51.100.9"}, loopback, "198.51.100.9"},
		{"trusted IPv6 loopback", "[::1]:1234", []string{"2001:db8::5"}, loopback, "2001:db8::5"},
		{"right-most untrusted wins over a forged left", "127.0.0.1:1", []string{"6.6.6.6, 198.51.100.9"}, loopback, "198.51.100.9"},
		{"trusted hops skipped", "10.0.0.2:1", []string{"6.6.6.6, 198.51.100.9, 10.0.0.7"}, gw, "198.51.100.9"},
		{"several headers", "10.0.0.2:1", []string{"6.6.6.6", "198.51.100.9", "10.0.0.7"}, gw, "198.51.100.9"},
		{"all trusted: left-most", "10.0.0.2:1", []string{"10.1.1.1, 10.0.0.7"}, gw, "10.1.1.1"},
		{"garbage stops the walk", "10.0.0.2:1", []string{"198.51.100.9, garbage, 10.0.0.7"}, gw, "10.0.0.7"},
		{"ports and brackets in XFF", "10.0.0.2:1", []string{"[2001:db8::9]:443"}, gw, "2001:db8::9"},
		{"brackets without port in XFF", "10.0.0.2:1", []string{"[2001:db8::9]"}, gw, "2001:db8::9"},
		{"IPv4 with port in XFF", "10.0.0.2:1", []string{"198.51.100.9:8080"}, gw, "198.51.100.9"},
		{"mapped address in XFF is unmapped", "10.0.0.2:1", []string{"::ffff:198.51.100.9"}, gw, "198.51.100.9"},
		{"zone dropped", "10.0.0.2:1", []string{"fe80::1%eth0"}, gw, "fe80::1"},
		{"mapped peer is trusted", "[::ffff:127.0.0.1]:1", []string{"198.51.100.9"}, loopback, "198.51.100.9"},
		{"nothing trusted", "127.0.0.1:1", []string{"198.51.100.9"}, nil, "127.0.0.1"},
		{"empty entries skipped", "127.0.0.1:1", []string{"198.51.100.9, ,"}, loopback, "198.51.100.9"},
		{"peer without port", "198.51.100.1", nil, loopback, "198.51.100.1"},
		{"IPv6 peer without port", "2001:db8::1", nil, loopback, "2001:db8::1"},
		{"IPv6 peer in brackets without port", "[2001:db8::1]", nil, loopback, "2001:db8::1"},
		{"peer zone dropped", "[fe80::1%eth0]:80", nil, loopback, "fe80::1"},
		{"mapped peer unmapped", "[::ffff:198.51.100.1]:80", nil, loopback, "198.51.100.1"},
		{"unparseable peer", "pipe", nil, loopback, "invalid IP"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "/api/event", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := Of(r, tc.trusted).String(); got != tc.want {
			t.Errorf("%s: %s; want %s", tc.name, got, tc.want)
		}
	}
}

// TestParsePeerAgreesWithParseAddr: the RemoteAddr fast path reads every form as the
// general parser does.
func TestParsePeerAgreesWithParseAddr(t *testing.T) {
	for _, s := range []string{
		"198.51.100.1:1234", "198.51.100.1", "[::1]:80", "::1", "[::1]", "::1:80",
		"[fe80::1%eth0]:80", "fe80::1%eth0", "[::ffff:10.0.0.1]:9", "::ffff:10.0.0.1",
		"1.2.3.4:99999", "1.2.3.4:", ":80", "", "pipe", "[1.2.3.4]:80", "@",
	} {
		if got, want := parsePeer(s), parseAddr(s); got != want {
			t.Errorf("parsePeer(%q) = %v; parseAddr gives %v", s, got, want)
		}
	}
}

func TestPrefixList(t *testing.T) {
	if got := Loopback(); got.String() != "127.0.0.0/8,::1/128" {
		t.Errorf("Loopback() = %s", got.String())
	}
	var l PrefixList
	if err := l.Set(" 10.0.0.0/8, 192.0.2.7 ,::ffff:172.16.0.0/108,fd00::/8,,2001:db8::1"); err != nil {
		t.Fatal(err)
	}
	const want = "10.0.0.0/8,192.0.2.7/32,172.16.0.0/12,fd00::/8,2001:db8::1/128"
	if got := l.String(); got != want {
		t.Fatalf("String() = %s; want %s", got, want)
	}
	if !l.Contains(netip.MustParseAddr("172.31.255.255")) || l.Contains(netip.MustParseAddr("172.32.0.0")) {
		t.Error("the unmapped 172.16.0.0/12 does not hold exactly its addresses")
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "not-an-ip", "1.2.3", "10.0.0.0/8,,x"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if got := l.String(); got != want {
		t.Errorf("a rejected Set changed the list to %s", got)
	}
	if err := l.Set(""); err != nil || len(l) != 0 {
		t.Fatalf("empty list: %v %v", l, err)
	}
	var nilList *PrefixList
	if nilList.String() != "" {
		t.Error("a nil list must print empty (flag.PrintDefaults calls String on a zero value)")
	}
}
