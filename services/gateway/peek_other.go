//go:build !unix

package gateway

import "net"

// peerOpen cannot look without reading here: a closed connection shows when it is used.
func peerOpen(net.Conn) bool { return true }
