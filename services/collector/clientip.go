package collector

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r. It is the connection's peer
// address, unless the peer is a trusted proxy: then X-Forwarded-For is read from the right
// and the first address that is not itself a trusted proxy is the client (each trusted hop
// appended the address it saw, so that entry cannot be forged by the client). When every
// forwarded address is trusted, the left-most one is taken. Entries that do not parse stop
// the walk, and the last good address is used. The result is invalid only when RemoteAddr
// itself cannot be parsed.
func ClientIP(r *http.Request, trusted PrefixList) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() || !trusted.Contains(peer) {
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var part string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				part, v = v, ""
			}
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			a := parseHostAddr(part)
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

// parseHostAddr parses "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" and drops zones and the
// IPv4-in-IPv6 mapping, so one client always hashes the same way.
func parseHostAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}
