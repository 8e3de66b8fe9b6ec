// Package cassandra is the store.Store of the fleet, on Apache Cassandra 5.0 through
// github.com/gocql/gocql.
//
// Tables (schema/0001_init.cql; later schema/*.cql files change table options) follow the
// layout of package store:
//
//	rollups:    partition (site, granularity, dimension, period) · cluster (bucket, value, shard)
//	events:     partition (site, day, shard)                       · cluster (time_ms, bus_offset)
//	event_days: partition (site)                                   · cluster (day) → set of shards
//	meta:       partition (namespace)                              · cluster (key)
//
// The rollup period is the UTC day of the bucket at every granularity, which keeps a
// partition to one day of one dimension. Writes are full-state upserts (ADR 0002) with
// client timestamps from a monotonic clock, grouped into unlogged batches that never span
// two partitions, with per-granularity TTLs. Every request is idempotent and retried on
// transient errors; errors that mean "try again later" wrap store.ErrUnavailable.
//
// The schema is versioned (schema_version table); Migrate applies it, and Open refuses a
// keyspace whose schema is older or newer than this binary's. See
// docs/adr/0005-cassandra-store.md.
package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/store"
)

// Options are the process-wide dependencies of a Store. The zero value is ready to use.
type Options struct {
	// Logger receives store and driver messages. Default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, gets the glimpse_store_* metrics (engine="cassandra").
	Metrics prometheus.Registerer
}

// Store is a store.Store on a Cassandra keyspace. It is safe for concurrent use.
type Store struct {
	cfg    Config
	sess   *gocql.Session
	log    *slog.Logger
	m      *metrics
	cons   gocql.Consistency
	serial gocql.SerialConsistency

	rowTTL    [4]int // USING TTL seconds by granularity
	eventsTTL int
	indexTTL  int

	readSem  chan struct{}
	writeSem chan struct{}
	clock    clock
	index    indexCache

	// noFiltering is set once the cluster refused ALLOW FILTERING; value filters are then
	// applied in the client only.
	noFiltering atomic.Bool

	mu       sync.Mutex
	cond     sync.Cond
	closed   bool
	inflight int
}

var _ store.Store = (*Store)(nil)

// Open connects to the cluster and checks that the keyspace has the schema this binary
// needs. With cfg.CreateSchema it first creates the keyspace and applies missing schema
// versions (see Migrate); without it, a missing or older schema is refused with an error
// wrapping ErrSchemaTooOld that says to run `glimpse migrate --store=cassandra`. A newer
// schema is refused with ErrSchemaTooNew. Unreachable clusters give an error wrapping
// store.ErrUnavailable.
func Open(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("keyspace", cfg.Keyspace)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := newMetrics()
	if err := m.register(opts.Metrics); err != nil {
		return nil, fmt.Errorf("cassandra: register metrics: %w", err)
	}
	if cfg.CreateSchema {
		res, err := migrate(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		if len(res.Applied) > 0 {
			log.Info("schema migrated", "from", res.From, "to", res.To, "applied", res.Applied)
		}
	}
	sess, err := connect(cfg, cfg.Keyspace, log, m)
	if err != nil {
		// A keyspace that does not exist fails every connection: tell that case apart.
		if probe, perr := connect(cfg, "", log, nil); perr == nil {
			_, exists, kerr := keyspaceReplication(ctx, probe, cfg.Keyspace)
			probe.Close()
			if kerr == nil && !exists {
				return nil, tooOld(cfg.Keyspace, 0)
			}
		}
		return nil, err
	}
	if err := checkSchema(ctx, sess, cfg); err != nil {
		sess.Close()
		return nil, err
	}
	cons, _ := parseConsistency(cfg.Consistency)
	serial, _ := parseSerialConsistency(cfg.SerialConsistency)
	s := &Store{
		cfg:       cfg,
		sess:      sess,
		log:       log,
		m:         m,
		cons:      cons,
		serial:    serial,
		eventsTTL: ttlSeconds(cfg.EventsTTL),
		readSem:   make(chan struct{}, cfg.MaxConcurrentReads),
		writeSem:  make(chan struct{}, cfg.MaxConcurrentWrites),
	}
	s.rowTTL[store.Minute] = ttlSeconds(cfg.MinuteTTL)
	s.rowTTL[store.Hour] = ttlSeconds(cfg.HourTTL)
	s.rowTTL[store.Day] = ttlSeconds(cfg.DayTTL)
	if s.eventsTTL > 0 {
		// The index of a day outlives its events: it is refreshed at least every
		// indexRefresh while the day is written, and events expire eventsTTL after their write.
		s.indexTTL = min(s.eventsTTL+ttlSeconds(indexRefresh+2*day), ttlSeconds(maxTTL))
	}
	s.cond.L = &s.mu
	if err := s.checkTTLs(ctx); err != nil {
		sess.Close()
		return nil, err
	}
	log.Debug("cassandra store opened", "hosts", cfg.Hosts, "consistency", cons.String())
	log.Info("retention: every write expires by TTL", "retention", cfg.Retention())
	return s, nil
}

// expirationLimit is the latest expiration date Cassandra accepts in its default
// storage_compatibility_mode of 5.0 (CASSANDRA_4); see CASSANDRA-14227.
var expirationLimit = time.Date(2038, 1, 19, 3, 14, 6, 0, time.UTC)

// checkTTLs makes sure the cluster accepts the longest configured TTL. Only a TTL that
// expires after expirationLimit needs asking: a probe write with it answers whether the
// cluster runs with the longer limit (storage_compatibility_mode NONE).
func (s *Store) checkTTLs(ctx context.Context) error {
	longest, name := 0, ""
	for _, t := range []struct {
		name string
		ttl  int
	}{{"minute", s.rowTTL[store.Minute]}, {"hour", s.rowTTL[store.Hour]}, {"day", s.rowTTL[store.Day]}, {"events", s.indexTTL}} {
		if t.ttl > longest {
			longest, name = t.ttl, t.name
		}
	}
	if !time.Now().Add(time.Duration(longest) * time.Second).After(expirationLimit) {
		return nil
	}
	const ns, key = "glimpse.store", "ttl-probe"
	err := s.query(ctx, `INSERT INTO meta (namespace, key, value) VALUES (?, ?, ?) USING TTL ?`, ns, key, []byte{}, longest).Exec()
	if err == nil {
		return s.query(ctx, deleteMetaStmt, ns, key).Exec()
	}
	if strings.Contains(err.Error(), "maximum supported expiration date") {
		years := max(int(time.Until(expirationLimit)/year)-1, 0) // a year of margin: the limit comes closer
		return fmt.Errorf("retention.%s is longer than this cluster accepts: data written now would expire after %s, the limit of Cassandra's storage_compatibility_mode CASSANDRA_4 (the default of 5.0; see CASSANDRA-14227). Use at most %dy, or 0 to keep data forever",
			name, expirationLimit.Format("2006-01-02"), years)
	}
	return wrapErr("check TTLs", err)
}

// connect opens a session; keyspace "" leaves it unbound. m, when set, gets request metrics.
func connect(cfg Config, keyspace string, log *slog.Logger, m *metrics) (*gocql.Session, error) {
	c := gocql.NewCluster(cfg.Hosts...)
	c.Keyspace = keyspace
	c.ProtoVersion = 4
	c.Consistency = mustConsistency(cfg)
	if sc, err := parseSerialConsistency(cfg.SerialConsistency); err == nil {
		c.SerialConsistency = sc
	}
	c.Timeout = cfg.Timeout
	c.ConnectTimeout = cfg.ConnectTimeout
	c.NumConns = cfg.ConnectionsPerHost
	c.PageSize = cfg.PageSize
	c.DefaultIdempotence = true
	c.RetryPolicy = transientRetry{retries: cfg.Retries} // schema statements; the store's own requests bring a retrier
	c.Logger = driverLogger{log}
	fallback := gocql.RoundRobinHostPolicy()
	if cfg.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(cfg.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback)
	if cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	if m != nil {
		c.QueryObserver = observer{m}
		c.BatchObserver = observer{m}
	}
	sess, err := c.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("%w: cassandra: cannot connect to %s: %w (is Cassandra running and reachable? check --cassandra.hosts)",
			store.ErrUnavailable, strings.Join(cfg.Hosts, ","), err)
	}
	return sess, nil
}

// driverLogger sends gocql's messages to slog.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprint(v...)), "component", "gocql")
}
func (l driverLogger) Printf(format string, v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "gocql")
}
func (l driverLogger) Println(v ...any) {
	l.log.Warn(strings.TrimSpace(fmt.Sprintln(v...)), "component", "gocql")
}

// Close waits for running operations and closes the session. Closing twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.inflight > 0 {
		s.cond.Wait()
	}
	s.mu.Unlock()
	s.sess.Close()
	s.log.Debug("cassandra store closed")
	return nil
}

// Keyspace is the keyspace the store uses.
func (s *Store) Keyspace() string { return s.cfg.Keyspace }

// enter admits one operation unless the store is closed; exit must follow.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.inflight++
	return nil
}

func (s *Store) exit() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 && s.closed {
		s.cond.Broadcast()
	}
	s.mu.Unlock()
}

// begin runs the checks every operation starts with: the context, then the store state.
func (s *Store) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.enter()
}

// query prepares a request with the store's consistency, idempotence and retry policy.
// gocql prepares (and caches) every statement with bind markers.
func (s *Store) query(ctx context.Context, stmt string, args ...any) *gocql.Query {
	return s.sess.Query(stmt, args...).
		WithContext(ctx).
		Consistency(s.cons).
		SerialConsistency(s.serial).
		Idempotent(true).
		RetryPolicy(s.retrier(ctx))
}

// acquire takes a slot of sem, or gives up when ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release(sem chan struct{}) { <-sem }

// retrier is the retry policy of one request: up to cfg.Retries retries on the next host
// for transient errors, with jittered exponential backoff that ends with the context.
type retrier struct {
	ctx      context.Context
	retries  int
	attempts int
	m        *metrics
}

func (s *Store) retrier(ctx context.Context) *retrier {
	return &retrier{ctx: ctx, retries: s.cfg.Retries, m: s.m}
}

// Attempt is asked after a failed attempt whether another one is allowed.
func (r *retrier) Attempt(q gocql.RetryableQuery) bool {
	r.attempts = q.Attempts()
	return r.attempts <= r.retries && r.ctx.Err() == nil
}

// GetRetryType is asked, after Attempt allowed it, how to retry err.
func (r *retrier) GetRetryType(err error) gocql.RetryType {
	kind := errorKind(err)
	if !retryable(kind) {
		return gocql.Rethrow
	}
	t := time.NewTimer(backoff(r.attempts))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.ctx.Done():
		return gocql.Rethrow
	}
	r.m.retries.WithLabelValues(kind).Inc()
	return gocql.RetryNextHost
}

// transientRetry retries transient errors on the next host, without backoff. It is the
// session default, used by schema statements.
type transientRetry struct{ retries int }

func (r transientRetry) Attempt(q gocql.RetryableQuery) bool { return q.Attempts() <= r.retries }

func (r transientRetry) GetRetryType(err error) gocql.RetryType {
	if retryable(errorKind(err)) {
		return gocql.RetryNextHost
	}
	return gocql.Rethrow
}

// backoff is the jittered pause before retry number n (1, 2, ...): about 50 ms, 100 ms,
// 200 ms, ... up to 2 s.
func backoff(n int) time.Duration {
	base := 50 * time.Millisecond << min(max(n-1, 0), 5)
	base = min(base, 2*time.Second)
	return base/2 + time.Duration(rand.Int64N(int64(base)))
}

// clock hands out strictly increasing write timestamps (Unix µs). Every write of one call
// carries one timestamp, so a later call always wins over an earlier one, and a retried
// request keeps the timestamp it was first sent with.
type clock struct{ last atomic.Int64 }

func (c *clock) next() int64 {
	for {
		now := time.Now().UnixMicro()
		last := c.last.Load()
		if now <= last {
			now = last + 1
		}
		if c.last.CompareAndSwap(last, now) {
			return now
		}
	}
}

// errGroup runs functions concurrently, at most limit at a time, and returns the first
// error; the context it hands out ends at the first error.
type errGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newErrGroup(ctx context.Context) *errGroup {
	ctx, cancel := context.WithCancel(ctx)
	return &errGroup{ctx: ctx, cancel: cancel}
}

// goSem starts fn once a slot of sem is free. It returns false (without starting fn) when
// the group's context ended first.
func (g *errGroup) goSem(sem chan struct{}, fn func(ctx context.Context) error) bool {
	if err := acquire(g.ctx, sem); err != nil {
		g.fail(err)
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer release(sem)
		if err := fn(g.ctx); err != nil {
			g.fail(err)
		}
	}()
	return true
}

func (g *errGroup) fail(err error) {
	g.once.Do(func() {
		g.err = err
		g.cancel()
	})
}

func (g *errGroup) wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

// firstErr prefers the caller's context error over errors it caused downstream.
func firstErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return cerr
	}
	return err
}
