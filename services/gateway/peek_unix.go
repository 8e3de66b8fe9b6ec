//go:build unix

package gateway

import (
	"errors"
	"net"
	"syscall"
)

// peerOpen reports whether an idle connection is still open at the other end: a peek
// that does not wait finds nothing to read. An end of stream (the peer closed it), stray
// bytes or an error all make the connection unfit to carry a request.
func peerOpen(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // never wait for the socket to become readable
	})
	return err == nil && open
}
