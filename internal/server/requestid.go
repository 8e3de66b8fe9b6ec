package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/glimpse-analytics/glimpse/internal/telemetry"
)

// RequestIDHeader carries a request's id between the caller, the gateway and the services,
// and back in the response, so one id finds a request's log lines in every process.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a caller-chosen id: longer ones are replaced, not truncated.
const maxRequestIDLen = 64

// SaneRequestID reports whether a caller-chosen id is kept: 1 to 64 printable ASCII
// characters without spaces, so it is safe to log and to forward as a header.
func SaneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// NewRequestID returns a random id of 16 hex digits.
func NewRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var digits [16]byte
	hex.Encode(digits[:], b[:])
	return string(digits[:])
}

// ensureRequestID keeps the request's sane X-Request-Id or gives it a new one, writes it
// to the request (so a proxy forwards it) and to the response, and returns it.
//
// It runs on every request, so it sets the headers by their canonical key instead of with
// Header.Set, which would allocate a value slice per header: the request and the response
// share one. net/http and the gateway only read header values; Header.Set replaces the slice
// and Header.Add appends to a slice of capacity one, so neither writes into the other.
func ensureRequestID(w http.ResponseWriter, r *http.Request) string {
	values := r.Header[RequestIDHeader]
	if len(values) > 0 && SaneRequestID(values[0]) {
		// Only the first one counts, as with Header.Get; the capacity of one makes an
		// Add to the response's header copy instead of writing into the request's.
		values = values[:1:1]
	} else {
		values = []string{NewRequestID()}
		if r.Header == nil {
			r.Header = http.Header{}
		}
		r.Header[RequestIDHeader] = values
	}
	w.Header()[RequestIDHeader] = values
	return values[0]
}

// RequestID is middleware that gives every request an id (see ensureRequestID) and puts it
// in the request's context for telemetry's logger. Instrument does the same; RequestID is
// for handlers that are also served without it (the gateway's router in tests).
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := telemetry.RequestID(ctx)
		if id == "" || id != r.Header.Get(RequestIDHeader) {
			id = ensureRequestID(w, r)
			r = r.WithContext(telemetry.WithRequestID(ctx, id))
		}
		next.ServeHTTP(w, r)
	})
}
