package cassandra

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/gocql/gocql"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// ErrClosed is returned by every method after Close. It wraps store.ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: cassandra store is closed", store.ErrUnavailable)

// Error kinds, the "kind" label of glimpse_store_errors_total and glimpse_store_retries_total.
const (
	kindUnavailable = "unavailable" // not enough replicas alive for the consistency level
	kindTimeout     = "timeout"     // a coordinator or the client timed out
	kindOverloaded  = "overloaded"  // a node shed the request (overloaded, bootstrapping)
	kindFailure     = "failure"     // replicas failed the request (read/write failure)
	kindConnection  = "connection"  // no host, connection refused, closed or reset
	kindServer      = "server"      // an unexpected server-side error
	kindInvalid     = "invalid"     // a request Cassandra refuses (schema, syntax, auth)
	kindClosed      = "closed"      // the store was closed
	kindCanceled    = "canceled"    // the caller's context ended
	kindOther       = "other"
)

// errorKind classifies an error from gocql.
func errorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrClosed):
		return kindClosed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kindCanceled
	}
	var (
		unavail  *gocql.RequestErrUnavailable
		wTimeout *gocql.RequestErrWriteTimeout
		rTimeout *gocql.RequestErrReadTimeout
		casUnk   *gocql.RequestErrCASWriteUnknown
		rFail    *gocql.RequestErrReadFailure
		wFail    *gocql.RequestErrWriteFailure
		reqErr   gocql.RequestError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &unavail):
		return kindUnavailable
	case errors.As(err, &wTimeout), errors.As(err, &rTimeout), errors.As(err, &casUnk),
		errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrTooManyTimeouts):
		return kindTimeout
	case errors.As(err, &rFail), errors.As(err, &wFail):
		return kindFailure
	case errors.As(err, &reqErr):
		switch reqErr.Code() {
		case gocql.ErrCodeUnavailable:
			return kindUnavailable
		case gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate:
			return kindOverloaded
		case gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeCASWriteUnknown:
			return kindTimeout
		case gocql.ErrCodeReadFailure, gocql.ErrCodeWriteFailure, gocql.ErrCodeCDCWriteFailure:
			return kindFailure
		case gocql.ErrCodeServer:
			return kindServer
		case gocql.ErrCodeProtocol:
			return kindConnection
		}
		return kindInvalid
	case errors.Is(err, gocql.ErrNoConnections), errors.Is(err, gocql.ErrConnectionClosed),
		errors.Is(err, gocql.ErrSessionClosed), errors.Is(err, gocql.ErrNoStreams),
		errors.Is(err, gocql.ErrNoConnectionsStarted), errors.Is(err, gocql.ErrHostQueryFailed),
		errors.Is(err, gocql.ErrUnavailable),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return kindConnection
	case errors.As(err, &netErr):
		if netErr.Timeout() {
			return kindTimeout
		}
		return kindConnection
	}
	// gocql reports some connection problems only as text.
	msg := err.Error()
	for _, s := range []string{"no connections", "no hosts", "connection refused", "unable to connect", "unable to dial", "no control connection", "connection closed", "i/o timeout"} {
		if strings.Contains(msg, s) {
			return kindConnection
		}
	}
	return kindOther
}

// transient reports whether errors of kind mean "cannot serve right now": they wrap
// store.ErrUnavailable, so the query API answers 503 and processors back off and retry.
func transient(kind string) bool {
	switch kind {
	case kindUnavailable, kindTimeout, kindOverloaded, kindFailure, kindConnection, kindServer, kindClosed:
		return true
	}
	return false
}

// retryable reports whether gocql may retry a request that failed with an error of kind.
// Every request the store sends is idempotent (full-state upserts, reads, and a
// PutMetaIfAbsent whose answer is whatever is stored), so timeouts are retried too.
func retryable(kind string) bool {
	switch kind {
	case kindUnavailable, kindTimeout, kindOverloaded, kindFailure, kindConnection, kindServer:
		return true
	}
	return false
}

// wrapErr adds the operation to err and wraps store.ErrUnavailable around transient ones.
// Context errors stay as they are, so errors.Is(err, context.Canceled) holds.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	switch kind := errorKind(err); {
	case kind == kindClosed:
		return err
	case kind == kindCanceled:
		return fmt.Errorf("cassandra %s: %w", op, err)
	case transient(kind):
		return fmt.Errorf("%w: cassandra %s (%s): %w", store.ErrUnavailable, op, kind, err)
	}
	return fmt.Errorf("cassandra %s: %w", op, err)
}

// isFilteringRefused reports an error of a server that forbids ALLOW FILTERING (the
// allow_filtering_enabled guardrail).
func isFilteringRefused(err error) bool {
	var reqErr gocql.RequestError
	if !errors.As(err, &reqErr) || reqErr.Code() != gocql.ErrCodeInvalid {
		return false
	}
	msg := strings.ToLower(reqErr.Message())
	return strings.Contains(msg, "allow filtering") || strings.Contains(msg, "allow_filtering")
}
