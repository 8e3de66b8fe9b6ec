// Package consul is the registry.Registry of the fleet, backed by a Consul agent through
// github.com/hashicorp/consul/api.
//
// Register puts an instance in the local agent's catalog with an HTTP health check on
// <address>/healthz; Consul calls it every consul.check-interval and lists the instance as
// healthy only while it answers 2xx. Instances answers from a cache in this process: the
// first lookup of a service starts a watch (a loop of blocking queries for the passing
// instances of that service), so gateways never wait on Consul in the request path once
// the cache is filled, and keep routing to the last known healthy set while Consul is
// unreachable. When Consul answers again after an outage or a restart, instances it no
// longer lists are kept for three check intervals, the time they need to register again and
// pass a check, so a restarted agent's empty catalog does not empty the gateways' routes.
//
// A background loop compares the instances this process registered with what the agent
// knows, every check interval and whenever a watch sees Consul's state reset, and
// registers again whatever the agent lost (a restarted dev agent, a wiped data dir, a
// reaped critical instance), without restarting the process.
package consul

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/glimpse-analytics/glimpse/services/registry"
)

// Options are the registry's collaborators.
type Options struct {
	Logger  *slog.Logger          // default slog.Default()
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
}

// Meta keys the registry adds to every registration.
const (
	// MetaAddress holds Instance.Address exactly as registered (scheme included); Consul's
	// own fields only keep host and port. It is removed again from Instance.Meta on lookup.
	MetaAddress = "glimpse_address"
	MetaVersion = "version"
	MetaZone    = "zone"
)

// healthPath is what the agent calls on every instance.
const healthPath = "/healthz"

var errClosed = errors.New("consul registry: closed")

// Registry is a registry.Registry backed by Consul. Create it with New and Close it when
// done; it is safe for concurrent use.
type Registry struct {
	cfg       Config
	client    *api.Client
	transport *http.Transport
	log       *slog.Logger
	m         *metrics

	ctx    context.Context // cancelled by Close; parent of every background call
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the keeper to compare registrations now

	mu      sync.Mutex
	watches map[string]*watch // by service name

	// regMu serialises Register, Deregister and re-registration, so a re-registration can
	// never bring back an instance that Deregister removed a moment before.
	regMu sync.Mutex
	owned map[string]*ownedInstance // instances this process registered, by ID

	reachMu   sync.Mutex
	reachable int // -1 unknown, 0 no, 1 yes
}

type ownedInstance struct {
	inst registry.Instance
	reg  *api.AgentServiceRegistration
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry talking to the agent at cfg.Address. It does not contact Consul:
// a process may start before its agent does, and lookups fail (and registrations are
// retried) until the agent answers.
func New(cfg Config, opts Options) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ac := api.DefaultConfig()
	ac.Address = cfg.Address
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	ac.Datacenter = cfg.Datacenter
	// The default dialer waits 30s for a connection; a lost agent should show within the
	// request timeout instead.
	ac.Transport.DialContext = (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport := ac.Transport
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client for %q: %w", cfg.Address, err)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Registry{
		cfg: cfg, client: client, transport: transport, log: opts.Logger, m: m,
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		watches: map[string]*watch{}, owned: map[string]*ownedInstance{}, reachable: -1,
	}
	r.wg.Add(1)
	go r.keep()
	return r, nil
}

// Register adds inst to the local agent with a health check on inst.Address + "/healthz".
// inst.Address must be an http:// or https:// URL the agent can reach. The instance counts
// as healthy from registration until a check fails.
//
// The registration is remembered before the agent is called: when the agent cannot be
// reached the error is returned and the registration is retried in the background, so a
// caller that carries on is registered once Consul answers. Deregister or Close ends that.
func (r *Registry) Register(ctx context.Context, inst registry.Instance) error {
	reg, err := r.registration(inst)
	if err != nil {
		return err
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	if r.ctx.Err() != nil {
		return errClosed
	}
	r.owned[inst.ID] = &ownedInstance{inst: inst, reg: reg}
	err = r.register(ctx, reg, api.HealthPassing)
	var se api.StatusError
	if errors.As(err, &se) && se.Code >= 400 && se.Code < 500 {
		// The agent refused this registration; asking again will not help.
		delete(r.owned, inst.ID)
	}
	return err
}

// register sends reg to the agent with the given initial check status. Callers hold regMu.
func (r *Registry) register(ctx context.Context, reg *api.AgentServiceRegistration, status string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	regCopy := *reg
	check := *reg.Check
	check.Status = status
	regCopy.Check = &check
	err := r.client.Agent().ServiceRegisterOpts(&regCopy, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx))
	if err != nil {
		if !isStatus(err) {
			r.observe(err)
		}
		return fmt.Errorf("consul: register %s (%s) at %s: %w", reg.ID, reg.Name, r.cfg.Address, err)
	}
	r.observe(nil)
	return nil
}

// Deregister removes the instance with id from the local agent. An id this registry never
// registered and the agent does not know gives registry.ErrNotFound.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	r.regMu.Lock()
	defer r.regMu.Unlock()
	_, owned := r.owned[id]
	delete(r.owned, id)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	err := r.client.Agent().ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	switch {
	case err == nil:
		r.observe(nil)
		return nil
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		r.observe(nil)
		if owned {
			return nil // the agent lost it already (restart); gone is what was asked for
		}
		return fmt.Errorf("consul: deregister %s: %w", id, registry.ErrNotFound)
	default:
		if !isStatus(err) {
			r.observe(err)
		}
		return fmt.Errorf("consul: deregister %s at %s: %w", id, r.cfg.Address, err)
	}
}

// Instances returns the healthy instances of service, ordered by ID, from the local cache.
// The first call for a service starts its watch and waits (at most until ctx ends) for
// Consul's first answer. Once the cache holds an answer, later calls never wait, and while
// Consul is unreachable they keep returning the last known healthy set.
func (r *Registry) Instances(ctx context.Context, service string) ([]registry.Instance, error) {
	w, err := r.watchFor(service)
	if err != nil {
		return nil, err
	}
	select {
	case <-w.ready:
	default:
		select {
		case <-w.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("consul: no answer yet about %q from %s: %w", service, r.cfg.Address, ctx.Err())
		case <-r.ctx.Done():
			return nil, errClosed
		}
	}
	return w.snapshot()
}

// Close stops the watches and the re-registration loop. It leaves registrations in place:
// Deregister them first when the process is going away.
func (r *Registry) Close() error {
	r.regMu.Lock()
	r.cancel()
	r.regMu.Unlock()
	r.wg.Wait()
	r.transport.CloseIdleConnections()
	return nil
}

// registration turns inst into what the agent takes.
func (r *Registry) registration(inst registry.Instance) (*api.AgentServiceRegistration, error) {
	if inst.ID == "" || inst.Service == "" {
		return nil, fmt.Errorf("consul: an instance needs an ID and a service name, got %+v", inst)
	}
	u, err := url.Parse(inst.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("consul: instance %s has address %q; Consul needs an http:// or https:// URL its agent can reach", inst.ID, inst.Address)
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("consul: instance %s has a bad port in %q", inst.ID, inst.Address)
		}
	}
	meta := make(map[string]string, len(inst.Meta)+2)
	for k, v := range inst.Meta {
		meta[k] = v
	}
	if _, ok := meta[MetaZone]; !ok && r.cfg.Zone != "" {
		meta[MetaZone] = r.cfg.Zone
	}
	meta[MetaAddress] = inst.Address
	var tags []string
	for _, k := range []string{MetaVersion, MetaZone} {
		if v := meta[k]; v != "" {
			tags = append(tags, k+"="+v)
		}
	}
	return &api.AgentServiceRegistration{
		ID:      inst.ID,
		Name:    inst.Service,
		Address: u.Hostname(),
		Port:    port,
		Tags:    tags,
		Meta:    meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        "service:" + inst.ID,
			Name:                           "GET " + healthPath,
			HTTP:                           strings.TrimRight(inst.Address, "/") + healthPath,
			Method:                         http.MethodGet,
			Interval:                       r.cfg.CheckInterval.String(),
			Timeout:                        r.cfg.CheckTimeout.String(),
			DeregisterCriticalServiceAfter: r.cfg.DeregisterCriticalAfter.String(),
		},
	}, nil
}

// keep re-registers owned instances the agent no longer knows: every check interval, and
// at once when a watch saw Consul's state reset.
func (r *Registry) keep() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
		r.reconcile()
	}
}

func (r *Registry) reconcile() {
	r.regMu.Lock()
	owned := len(r.owned)
	r.regMu.Unlock()
	r.mu.Lock()
	watching := len(r.watches)
	r.mu.Unlock()
	if owned == 0 && watching == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	known, err := r.client.Agent().ServicesWithFilterOpts("", (&api.QueryOptions{}).WithContext(ctx))
	cancel()
	if r.ctx.Err() != nil {
		return
	}
	r.observe(err)
	if err != nil || owned == 0 {
		return
	}
	r.regMu.Lock()
	defer r.regMu.Unlock()
	for id, o := range r.owned {
		if _, ok := known[id]; ok {
			continue
		}
		if r.ctx.Err() != nil {
			return
		}
		// Critical until its first check passes: an instance the agent reaped for failing
		// its check must not get traffic again just because it was registered anew.
		if err := r.register(r.ctx, o.reg, api.HealthCritical); err != nil {
			r.log.Warn("consul: re-registering an instance the agent no longer knows failed; retrying", "instance", id, "service", o.inst.Service, "err", err)
			continue
		}
		r.m.reregistrations.Inc()
		r.log.Info("consul: registered an instance again that the agent no longer knew (agent restarted or the instance was reaped)", "instance", id, "service", o.inst.Service)
	}
}

// triggerReconcile asks the keeper to compare registrations now.
func (r *Registry) triggerReconcile() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// observe records whether the last call reached Consul, logging only the changes.
func (r *Registry) observe(err error) {
	up := 1
	if err != nil {
		up = 0
	}
	r.reachMu.Lock()
	was := r.reachable
	r.reachable = up
	r.reachMu.Unlock()
	r.m.reachable.Set(float64(up))
	switch {
	case was != 0 && up == 0:
		r.log.Warn("consul: unreachable (or refusing requests); answering lookups from the last known healthy instances until it answers again", "address", r.cfg.Address, "err", err)
	case was == 0 && up == 1:
		r.log.Info("consul: reachable again", "address", r.cfg.Address)
		r.triggerReconcile()
	}
}

func isStatus(err error) bool {
	var se api.StatusError
	return errors.As(err, &se)
}

// sortInstances orders by ID, then address (IDs are unique per agent, not per cluster).
func sortInstances(insts []registry.Instance) {
	sort.Slice(insts, func(i, j int) bool {
		if insts[i].ID != insts[j].ID {
			return insts[i].ID < insts[j].ID
		}
		return insts[i].Address < insts[j].Address
	})
}
