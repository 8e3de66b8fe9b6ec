package consul

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// fakeConsul answers the few agent and health endpoints the registry uses, with blocking
// queries, so the cache, outage and re-registration logic is tested without an agent. It
// can go down (connections refused), come back on the same address, and forget everything
// with a lower index, as a restarted dev agent does. Check status is whatever the
// registration asked for, or what setStatus sets; the fake runs no checks.
type fakeConsul struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	index    uint64
	services map[string]*api.AgentServiceRegistration
	status   map[string]string
	changed  chan struct{}
	srv      *http.Server
	hang     bool // health queries never answer
	requests int
}

func startFake(t *testing.T) *fakeConsul {
	t.Helper()
	f := &fakeConsul{t: t, index: 10, services: map[string]*api.AgentServiceRegistration{}, status: map[string]string{}, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.down)
	return f
}

func (f *fakeConsul) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.handle)}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every open connection: calls are refused from now on.
func (f *fakeConsul) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (f *fakeConsul) up() {
	f.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("fake consul: listen again on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

// reset forgets every registration and moves the index back, as an agent restart does.
func (f *fakeConsul) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services = map[string]*api.AgentServiceRegistration{}
	f.status = map[string]string{}
	f.index = 2
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) setStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[id] = status
	f.bumpLocked()
}

func (f *fakeConsul) known(id string) (reg *api.AgentServiceRegistration, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.services[id], f.status[id]
}

func (f *fakeConsul) bumpLocked() {
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v1/agent/service/register":
		var reg api.AgentServiceRegistration
		if err := json.NewDecoder(r.Body).Decode(&reg); err != nil || reg.ID == "" {
			http.Error(w, "bad registration", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.services[reg.ID] = &reg
		st := api.HealthCritical
		if reg.Check != nil && reg.Check.Status != "" {
			st = reg.Check.Status
		}
		f.status[reg.ID] = st
		f.bumpLocked()
		f.mu.Unlock()
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/agent/service/deregister/"):
		id := strings.TrimPrefix(r.URL.Path, "/v1/agent/service/deregister/")
		f.mu.Lock()
		_, ok := f.services[id]
		delete(f.services, id)
		delete(f.status, id)
		if ok {
			f.bumpLocked()
		}
		f.mu.Unlock()
		if !ok {
			http.Error(w, "Unknown service ID "+strconv.Quote(id), http.StatusNotFound)
		}
	case r.Method == http.MethodGet && r.URL.Path == "/v1/agent/services":
		f.mu.Lock()
		out := map[string]*api.AgentService{}
		for id, reg := range f.services {
			out[id] = &api.AgentService{ID: id, Service: reg.Name, Address: reg.Address, Port: reg.Port, Meta: reg.Meta, Tags: reg.Tags}
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/health/service/"):
		f.health(w, r, strings.TrimPrefix(r.URL.Path, "/v1/health/service/"))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeConsul) health(w http.ResponseWriter, r *http.Request, name string) {
	index, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil {
		wait = 5 * time.Minute
	}
	_, passingOnly := r.URL.Query()["passing"]
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		hang, cur, changed := f.hang, f.index, f.changed
		f.mu.Unlock()
		if !hang && (index == 0 || cur != index) {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			if !hang {
				index = 0 // answer with the unchanged state
			}
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	var out []*api.ServiceEntry
	for id, reg := range f.services {
		if reg.Name != name || (passingOnly && f.status[id] != api.HealthPassing) {
			continue
		}
		out = append(out, &api.ServiceEntry{
			Node:    &api.Node{Node: "fake", Address: "127.0.0.1"},
			Service: &api.AgentService{ID: id, Service: reg.Name, Address: reg.Address, Port: reg.Port, Meta: reg.Meta, Tags: reg.Tags},
			Checks:  api.HealthChecks{{CheckID: "service:" + id, Status: f.status[id]}},
		})
	}
	cur := f.index
	f.mu.Unlock()
	w.Header().Set("X-Consul-Index", strconv.FormatUint(cur, 10))
	w.Header().Set("Content-Type", "application/json")
	if out == nil {
		out = []*api.ServiceEntry{}
	}
	_ = json.NewEncoder(w).Encode(out)
}
