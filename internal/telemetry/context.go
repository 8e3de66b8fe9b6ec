package telemetry

import (
	"context"
	"log/slog"
)

type requestIDKey struct{}

// requestIDCtx carries a request id. It costs one allocation per request where
// context.WithValue would cost two (the context and the boxed string).
type requestIDCtx struct {
	context.Context
	id string
}

func (c *requestIDCtx) Value(key any) any {
	if _, ok := key.(requestIDKey); ok {
		return c
	}
	return c.Context.Value(key)
}

// WithRequestID returns ctx carrying the id of the HTTP request it serves, so that log
// lines written with the *Context variants of slog (InfoContext, ErrorContext, ...) name it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestIDCtx{Context: ctx, id: id}
}

// RequestID returns the request id ctx carries, or "" when it carries none.
func RequestID(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	if c, ok := ctx.Value(requestIDKey{}).(*requestIDCtx); ok {
		return c.id
	}
	return ""
}

// contextHandler adds request_id to every record logged with a context that carries one,
// so a request's log lines can be found by the id its response header shows.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
