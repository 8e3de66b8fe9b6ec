// Package clientip finds the address of the client behind an HTTP request, believing
// X-Forwarded-For only when it comes from a trusted proxy. The gateway uses it for its
// per-address rate limits and the collector for the visitor hash and the location lookup;
// both must find the same client for the same request, so there is one rule, here.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// PrefixList is a list of network prefixes that reads and prints as comma-separated CIDRs.
// A bare address stands for itself (a /32 or /128). It implements flag.Value.
type PrefixList []netip.Prefix

// Loopback returns the loopback networks (127.0.0.0/8 and ::1/128): the proxies trusted by
// default, so a proxy on the same host works without setting anything.
func Loopback() PrefixList {
	return PrefixList{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// String returns the prefixes comma-separated.
func (l *PrefixList) String() string {
	if l == nil {
		return ""
	}
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Set replaces the list with the comma-separated prefixes in s. Empty entries are skipped,
// so "" makes an empty list (no proxy trusted).
func (l *PrefixList) Set(s string) error {
	var out PrefixList
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := parsePrefix(part)
		if err != nil {
			return err
		}
		out = append(out, p)
	}
	*l = out
	return nil
}

// parsePrefix reads one CIDR or bare address. IPv4-mapped IPv6 prefixes become IPv4 ones,
// because Of unmaps every address it compares.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR such as 10.0.0.0/8 or fd00::/8", s)
		}
		a = a.Unmap().WithZone("")
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or fd00::/8", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	return p.Masked(), nil
}

// Contains reports whether a lies in one of the prefixes.
func (l PrefixList) Contains(a netip.Addr) bool {
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the address of the client that sent r: the connection's peer, unless the peer
// is a trusted proxy. Then X-Forwarded-For is walked from the right (the entry each trusted
// hop appended, which the client cannot forge) and the first address that is not a trusted
// proxy is the client. If every entry is trusted the left-most is taken; an entry that does
// not parse ends the walk at the last good address. Several X-Forwarded-For headers count
// as one list in their order. The result is invalid only when RemoteAddr cannot be parsed.
func Of(r *http.Request, trusted PrefixList) netip.Addr {
	peer := parsePeer(r.RemoteAddr)
	if !peer.IsValid() || !trusted.Contains(peer) {
		return peer
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		rest := values[i]
		for rest != "" {
			entry := rest
			rest = ""
			if j := strings.LastIndexByte(entry, ','); j >= 0 {
				entry, rest = entry[j+1:], entry[:j]
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a := parseAddr(entry)
			if !a.IsValid() {
				return client
			}
			client = a
			if !trusted.Contains(a) {
				return a
			}
		}
	}
	return client
}

// parsePeer is parseAddr for RemoteAddr, which net/http always sets to "host:port": that form
// is tried first, so the common case parses once and builds no error value.
func parsePeer(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return parseAddr(s)
}

// parseAddr reads "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" and "[::1]:80", without zone and
// with IPv4-mapped IPv6 turned into IPv4, so one client always has one form (and hashes
// and rate-limits the same way however it arrived).
func parseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}
