package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/internal/bus"
	"github.com/glimpse-analytics/glimpse/internal/lifecycle"
	"github.com/glimpse-analytics/glimpse/internal/server"
	"github.com/glimpse-analytics/glimpse/internal/store"
	"github.com/glimpse-analytics/glimpse/internal/telemetry"
	"github.com/glimpse-analytics/glimpse/services/collector"
	"github.com/glimpse-analytics/glimpse/services/gateway"
	"github.com/glimpse-analytics/glimpse/services/processor"
	"github.com/glimpse-analytics/glimpse/services/query"
	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/web"
)

// targetSpec describes one runnable target: which services it runs decides which settings
// it has.
type targetSpec struct {
	name        string
	summary     string
	defaultAddr string
	logFormat   string
	collector   bool
	processor   bool
	query       bool
	gateway     bool
}

var (
	targetAll = targetSpec{name: "all", defaultAddr: ":8080", logFormat: "text",
		summary:   "Runs the gateway, a collector, a processor and a query service in one process, on the\nembedded bus and store under --data-dir. Dashboard at http://<addr>/, tracker at /js/glimpse.js.",
		collector: true, processor: true, query: true, gateway: true}
	targetGateway = targetSpec{name: "gateway", defaultAddr: ":8080", logFormat: "json",
		summary: "Runs the gateway alone; it finds collectors and query services through the registry.", gateway: true}
	targetCollector = targetSpec{name: "collector", defaultAddr: ":8081", logFormat: "json",
		summary: "Runs a collector alone: POST /api/event, publishing to the bus.", collector: true}
	targetProcessor = targetSpec{name: "processor", defaultAddr: ":8083", logFormat: "json",
		summary: "Runs a processor alone: consumes the bus, writes the store. Its address serves only\n/healthz, /readyz and /metrics.", processor: true}
	targetQuery = targetSpec{name: "query", defaultAddr: ":8082", logFormat: "json",
		summary: "Runs a query service alone: POST /api/v1/query, GET /api/v1/realtime.", query: true}
)

// globalConfig holds the settings every target shares.
type globalConfig struct {
	Addr            string
	AdvertiseAddr   string
	DataDir         string
	LogFormat       string
	LogLevel        string
	Bus             string
	BusPartitions   int
	BusSyncInterval time.Duration
	Store           string
	Registry        string
	ShutdownTimeout time.Duration
	Pprof           bool
	MemoryLimit     string
}

func (g *globalConfig) registerFlags(fs *flag.FlagSet, t targetSpec, ec *engineConfigs) {
	fs.StringVar(&g.Addr, "addr", t.defaultAddr, "address to listen on (host:port)")
	fs.StringVar(&g.DataDir, "data-dir", "./data", "directory of the embedded bus and store")
	fs.StringVar(&g.LogFormat, "log.format", t.logFormat, "log format: text or json")
	fs.StringVar(&g.LogLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&g.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long each service may take to drain and flush on shutdown")
	defaultLimit := "0"
	if t.isAll() {
		defaultLimit = "256MiB"
	}
	fs.StringVar(&g.MemoryLimit, "memory-limit", defaultLimit, "soft limit of the Go heap (e.g. 256MiB, 1GiB; 0 = none): the collector of garbage works harder near it instead of letting memory grow, and below 512MiB the embedded store and bus shrink their caches and memtables to fit it; GOMEMLIMIT, if set, wins")
	fs.BoolVar(&g.Pprof, "debug.pprof", false, "serve Go's profiler at /debug/pprof/ (for diagnosing performance; do not expose publicly)")
	if t.collector || t.processor {
		fs.StringVar(&g.Bus, "bus", "embedded", "event bus engine: embedded (in this process, under --data-dir) or kafka (see --kafka.*)")
		fs.IntVar(&g.BusPartitions, "bus.partitions", 8, "partitions of a new topic on the embedded bus (fixed once the topic exists; Kafka uses --kafka.partitions)")
		fs.DurationVar(&g.BusSyncInterval, "bus.min-sync-interval", time.Millisecond, "least time between two fsyncs of the embedded bus's log: beacons arriving meanwhile share the next fsync, which under load saves CPU and disk operations per beacon for at most this much more latency (0: fsync as soon as possible)")
		ec.kafka.RegisterFlags(fs)
	}
	if t.collector || t.processor || t.query {
		fs.StringVar(&g.Store, "store", "pebble", "store engine: pebble (embedded, under --data-dir), cassandra (see --cassandra.*) or memory (lost on exit; for trials and tests)")
		ec.cassandra.RegisterFlags(fs)
	}
	if !t.isAll() {
		fs.StringVar(&g.Registry, "registry", "inproc", "service registry: consul (see --consul.*) or inproc (services of this process only)")
		ec.consul.RegisterFlags(fs)
	}
	if !t.isAll() && !t.gateway {
		fs.StringVar(&g.AdvertiseAddr, "advertise-addr", "", "http://host:port other services use to reach this instance (default: derived from --addr and the hostname)")
	}
}

func (t targetSpec) isAll() bool { return t.name == "all" }

// setDefault changes the default of a registered flag for one target: its value until the
// command line or the environment sets it, and what --help shows.
func setDefault(fs *flag.FlagSet, name, value string) {
	f := fs.Lookup(name)
	if err := f.Value.Set(value); err != nil {
		panic(fmt.Sprintf("default %q of --%s: %v", value, name, err))
	}
	f.DefValue = value
}

// serviceConfigs holds each service's own settings.
type serviceConfigs struct {
	collector collector.Config
	processor processor.Config
	query     query.Config
	gateway   gateway.Config
}

// validate checks the settings of the target's services before any engine is opened, so
// a mistyped value fails at once instead of after data directories were created or brokers
// dialled. The services check them again when they are built.
func (sc *serviceConfigs) validate(t targetSpec) error {
	var errs []error
	if t.collector {
		errs = append(errs, sc.collector.Validate())
	}
	if t.processor {
		errs = append(errs, sc.processor.Validate())
	}
	if t.query {
		errs = append(errs, sc.query.Validate())
	}
	if t.gateway {
		errs = append(errs, sc.gateway.Validate())
	}
	return errors.Join(errs...)
}

func runTarget(t targetSpec) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := flag.NewFlagSet("glimpse "+t.name, flag.ContinueOnError)
		fs.SetOutput(stdout)
		fs.Usage = usage(fs, t.name, t.summary)
		var g globalConfig
		ec := defaultEngineConfigs()
		g.registerFlags(fs, t, &ec)
		sc := serviceConfigs{
			collector: collector.DefaultConfig(), processor: processor.DefaultConfig(),
			query: query.DefaultConfig(), gateway: gateway.DefaultConfig(),
		}
		if t.collector {
			// One process on one machine: the first run counts whatever site it is sent.
			sc.collector.OpenSites = t.isAll()
			sc.collector.RegisterFlags(fs)
		}
		if t.processor {
			sc.processor.RegisterFlags(fs)
			if t.isAll() {
				// One process within --memory-limit: the rows of the lateness window (hours
				// of every breakdown value, 48 h of them) would fill the Go heap, and a heap at
				// its limit makes the garbage collector slow everything down. Idle rows are
				// read back from the store in the rare case a late event touches them.
				setDefault(fs, "processor.max-cached-rows", "10000")
				// The processor shares the machine's cores with ingest. A flush re-encodes
				// and rewrites every row touched since the last one (visitor sketches
				// included) and a checkpoint every open visit, so their cost grows with how
				// often they run, not with the events: every 2 s and 10 s instead of 1 s and
				// 5 s took a sixth off the processor's CPU per beacon in an ingest burst
				// (docs/benchmarks.md). Dashboards lag by at most 2 s; after a crash the
				// events of at most 10 s are read again from the bus.
				setDefault(fs, "processor.flush-interval", "2s")
				setDefault(fs, "processor.checkpoint-interval", "10s")
				// But what a flush writes waits in memory until then. Catching up on a
				// backlog (after downtime, or a bulk load), a partition applies 5,000–8,500
				// events a second: 2 s of that kept the heap above --memory-limit and made
				// catching up a third slower than flushing every second. 8,192 is above what
				// 2 s of full-speed ingest brings a partition (~21,000 beacons/s over 8:
				// ~5,200), so live traffic still flushes by time (docs/adr/0017).
				setDefault(fs, "processor.flush-events", "8192")
			}
		}
		if t.query {
			sc.query.RegisterFlags(fs)
		}
		if t.gateway {
			sc.gateway.RegisterFlags(fs)
		}
		if err := parseFlags(fs, args); err != nil {
			if err != flag.ErrHelp {
				fs.SetOutput(stderr)
			}
			return err
		}
		log, err := telemetry.NewLogger(stderr, g.LogFormat, g.LogLevel)
		if err != nil {
			return err
		}
		log = log.With("target", t.name)
		if err := applyMemoryLimit(g.MemoryLimit, log); err != nil {
			return err
		}
		if g.BusSyncInterval < 0 {
			return fmt.Errorf("--bus.min-sync-interval=%s must not be negative (0 syncs as soon as possible; e.g. 1ms)", g.BusSyncInterval)
		}
		if err := sc.validate(t); err != nil {
			return err
		}
		if t.isAll() {
			tuneGC(ctx, log)
		}
		return serve(ctx, t, g, ec, sc, log)
	}
}

// serve wires the target's services to their engines and runs them until ctx ends.
func serve(ctx context.Context, t targetSpec, g globalConfig, ec engineConfigs, sc serviceConfigs, log *slog.Logger) error {
	metrics := telemetry.NewRegistry()
	mgr := &lifecycle.Manager{Log: log, StopTimeout: g.ShutdownTimeout}
	eng := &engines{cfg: g, ec: ec, log: log, metrics: metrics}
	now := func() time.Time { return time.Now().UTC() }

	// Engines first: they start before and stop after the services that use them.
	var services []lifecycle.Service
	var st store.Store
	var b bus.Bus
	var err error
	if t.collector || t.processor || t.query {
		if st, err = eng.openStore(ctx); err != nil {
			return err
		}
		services = append(services, closer("store", st.Close))
	}
	if t.collector || t.processor {
		if b, err = eng.openBus(); err != nil {
			_ = st.Close()
			return err
		}
		services = append(services, closer("bus", b.Close))
	}
	reg, err := eng.openRegistry()
	if err != nil {
		return err
	}
	services = append(services, closer("registry", reg.Close))

	inproc := map[string]http.Handler{}
	mux := server.NewMux()
	deps := &telemetry.DependencyProbe{Deps: dependencies(map[string]any{"store": st, "bus": b, "registry": reg})}
	telemetry.Mount(mux, metrics, telemetry.AllReady(readiness(mgr), deps.Check))
	httpMetrics, err := server.NewHTTPMetrics(metrics, t.name)
	if err != nil {
		return err
	}
	if g.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// expose publishes a service's handler: in one process, through the in-process registry
	// address the gateway calls directly; alone, on this process's listener.
	var registrations []registry.Instance
	expose := func(service string, h http.Handler, routes ...string) {
		if t.isAll() {
			addr := registry.InProcScheme + service
			inproc[addr] = h
			registrations = append(registrations, registry.Instance{ID: service + "-inproc", Service: service, Address: addr, Meta: map[string]string{"version": version}})
			return
		}
		for _, r := range routes {
			mux.Handle(r, h)
		}
		registrations = append(registrations, registry.Instance{ID: instanceID(service, g.Addr), Service: service, Address: advertise(g), Meta: map[string]string{"version": version}})
	}

	if t.processor {
		p, err := processor.New(sc.processor, processor.Deps{Bus: b, Store: st, Log: log.With("service", "processor"), Metrics: metrics, Now: now})
		if err != nil {
			return err
		}
		services = append(services, p)
	}
	if t.query {
		// The query engine must know how far back minute rollups exist (--retention.minute).
		sc.query.MinuteRetention = ec.cassandra.Retention().Minute
		if sc.query.MinuteRetention == 0 { // kept forever
			sc.query.MinuteRetention = time.Duration(math.MaxInt64)
		}
		q, err := query.New(sc.query, query.Deps{Store: st, Log: log.With("service", "query"), Metrics: metrics, Now: now})
		if err != nil {
			return err
		}
		services = append(services, q)
		expose(registry.Query, q.Handler(), "/api/v1/")
	}
	if t.collector {
		c, err := collector.New(sc.collector, collector.Deps{Bus: b, Meta: st, Log: log.With("service", "collector"), Metrics: metrics, Now: now})
		if err != nil {
			return err
		}
		services = append(services, c)
		expose(registry.Collector, c.Handler(), collector.Path, collector.MPPath)
	}
	if t.gateway {
		gw, err := gateway.New(sc.gateway, gateway.Deps{
			Registry: reg, InProc: inproc, Tracker: web.Tracker(), Dashboard: web.Dashboard(),
			Log: log.With("service", "gateway"), Metrics: metrics,
		})
		if err != nil {
			return err
		}
		mux.Handle("/", gw.Handler())
	}
	httpServer := &server.HTTP{ServiceName: "http", Addr: g.Addr, Handler: httpMetrics.Instrument(mux), Log: log}
	services = append(services, httpServer, registration(reg, registrations, log))

	if t.isAll() {
		services = append(services, lifecycle.Funcs{ServiceName: "welcome", StartFn: func(ctx context.Context) error {
			fmt.Fprintf(os.Stderr, "\nGlimpse is running: dashboard http://%s/  tracker http://%s/js/glimpse.js  data %s\n\n",
				displayAddr(httpServer.BoundAddr()), displayAddr(httpServer.BoundAddr()), g.DataDir)
			if sc.query.Auth {
				return welcomeKey(ctx, os.Stderr, st, displayAddr(httpServer.BoundAddr()), g)
			}
			return nil
		}})
	}
	return mgr.Run(ctx, services...)
}

// registration registers this process's instances once everything else is up, and leaves
// the registry first on shutdown so gateways stop sending before the services drain.
func registration(reg registry.Registry, insts []registry.Instance, log *slog.Logger) lifecycle.Service {
	return lifecycle.Funcs{
		ServiceName: "registration",
		StartFn: func(ctx context.Context) error {
			for _, in := range insts {
				if err := reg.Register(ctx, in); err != nil {
					return fmt.Errorf("register %s: %w", in.ID, err)
				}
				log.Debug("registered", "instance", in.ID, "address", in.Address)
			}
			return nil
		},
		StopFn: func(ctx context.Context) error {
			for _, in := range insts {
				if err := reg.Deregister(ctx, in.ID); err != nil {
					log.Warn("deregister failed", "instance", in.ID, "err", err)
				}
			}
			return nil
		},
	}
}

func readiness(m *lifecycle.Manager) telemetry.Probe {
	return func() error {
		if !m.Ready() {
			return fmt.Errorf("services are starting or stopping")
		}
		return nil
	}
}

// dependencies returns a readiness check for each engine this process opened that can
// tell whether it answers (see telemetry.Pinger), in a fixed order.
func dependencies(engines map[string]any) []telemetry.Dependency {
	var out []telemetry.Dependency
	for _, name := range []string{"store", "bus", "registry"} {
		if p, ok := engines[name].(telemetry.Pinger); ok && p != nil {
			out = append(out, telemetry.Dependency{Name: name, Ping: p.Ping})
		}
	}
	return out
}

func closer(name string, close func() error) lifecycle.Service {
	return lifecycle.Funcs{ServiceName: name, StopFn: func(context.Context) error { return close() }}
}

func instanceID(service, addr string) string {
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("%s-%s-%s", service, host, port)
}

// advertise is the address other processes reach this instance at.
func advertise(g globalConfig) string {
	if g.AdvertiseAddr != "" {
		return g.AdvertiseAddr
	}
	host, port, err := net.SplitHostPort(g.Addr)
	if err != nil {
		return "http://" + g.Addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// displayAddr turns a listen address into one a person can click.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" || strings.HasPrefix(host, "[::") {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

var _ prometheus.Registerer = (*prometheus.Registry)(nil)

// applyMemoryLimit sets the Go runtime's soft memory limit unless GOMEMLIMIT already did.
func applyMemoryLimit(limit string, log *slog.Logger) error {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return nil
	}
	n, err := parseBytes(limit)
	if err != nil {
		return fmt.Errorf("--memory-limit=%q: %w", limit, err)
	}
	if n > 0 {
		debug.SetMemoryLimit(n)
		log.Debug("memory limit set", "bytes", n)
	}
	return nil
}

// parseBytes reads a size such as 256MiB, 1GiB, 512KiB or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if !strings.HasSuffix(s, u.suffix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), 10, 64)
		if err != nil || n < 0 {
			break
		}
		return n * u.factor, nil
	}
	return 0, fmt.Errorf("not a size: use a whole number with KiB, MiB or GiB (e.g. 256MiB), or 0 for none")
}
