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
	return hex.EncodeToString(b[:])
}

// ensureRequestID keeps the request's sane X-Request-Id or gives it a new one, writes it
// to the request (so a proxy forwards it) and to the response, and returns it.
func ensureRequestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if !SaneRequestID(id) {
		id = NewRequestID()
		r.Header.Set(RequestIDHeader, id)
	}
	w.Header().Set(RequestIDHeader, id)
	return id
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
