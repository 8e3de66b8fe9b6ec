package consul

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/glimpse-analytics/glimpse/services/registry"
	"github.com/glimpse-analytics/glimpse/services/registry/registrytest"
)

// These tests run against a real Consul agent named by GLIMPSE_TEST_CONSUL. They isolate
// themselves by unique service names and deregister what they registered, so a shared dev
// agent is fine. The agent calls the test's /healthz servers, so it must run on this host.

const (
	envConsul        = "GLIMPSE_TEST_CONSUL"
	envConsulRestart = "GLIMPSE_TEST_CONSUL_RESTART"
)

func agentAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv(envConsul)
	if addr == "" {
		t.Skipf("no Consul agent: start one with `ADDR=$(deploy/local/consul.sh start)` and run with %s=$ADDR (e.g. %s=127.0.0.1:8500 go test ./services/registry/consul/)", envConsul, envConsul)
	}
	return addr
}

func unique(base string) string { return base + "-" + time.Now().Format("150405.000000000") }

// direct is a client that bypasses the registry, to look at or change the agent's state.
func direct(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return c
}

func agentKnows(t *testing.T, c *api.Client, id string) bool {
	svcs, err := c.Agent().Services()
	if err != nil {
		return false
	}
	_, ok := svcs[id]
	return ok
}

func TestConsulConformance(t *testing.T) {
	addr := agentAddr(t)
	registrytest.Run(t, func(t *testing.T) registry.Registry {
		return newHarness(t, testConfig(addr)).Registry
	}, registrytest.Options{
		// A new registration is passing at once; deregistrations show with the next
		// blocking-query answer.
		Settle:  2 * time.Second,
		Address: func(t *testing.T) string { return newHealthServer(t).URL },
	})
}

func TestConsulFailingHealthCheckDisappears(t *testing.T) {
	addr := agentAddr(t)
	cfg := testConfig(addr)
	r := newHarness(t, cfg)
	svc := unique("glimpse-test-health")
	healthy, sick := newHealthServer(t), newHealthServer(t)
	for id, h := range map[string]*healthServer{"healthy": healthy, "sick": sick} {
		if err := r.Register(context.Background(), registry.Instance{ID: svc + "-" + id, Service: svc, Address: h.URL}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, "both listed", instancesAre(r.Registry, svc, svc+"-healthy,"+svc+"-sick"))
	time.Sleep(cfg.CheckInterval + 200*time.Millisecond) // both have passed a real check
	if !instancesAre(r.Registry, svc, svc+"-healthy,"+svc+"-sick")() {
		t.Fatal("an instance with a passing /healthz was dropped")
	}
	sick.set(false)
	took := waitFor(t, cfg.CheckInterval+time.Second, "instance with a failing /healthz dropped", instancesAre(r.Registry, svc, svc+"-healthy"))
	t.Logf("failing /healthz: dropped from Instances after %s (check interval %s)", took.Round(time.Millisecond), cfg.CheckInterval)
	sick.set(true)
	took = waitFor(t, cfg.CheckInterval+time.Second, "recovered instance listed again", instancesAre(r.Registry, svc, svc+"-healthy,"+svc+"-sick"))
	t.Logf("recovered /healthz: listed again after %s", took.Round(time.Millisecond))
}

func TestConsulUnreachableKeepsCache(t *testing.T) {
	addr := agentAddr(t)
	p := startProxy(t, addr)
	r := newHarness(t, testConfig(p.addr))
	svc := unique("glimpse-test-outage")
	h := newHealthServer(t)
	if err := r.Register(context.Background(), registry.Instance{ID: svc + "-1", Service: svc, Address: h.URL}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "listed", instancesAre(r.Registry, svc, svc+"-1"))

	p.stop()
	took := waitFor(t, 5*time.Second, "outage noticed", func() bool { return value(r.m.reachable) == 0 })
	t.Logf("outage noticed after %s", took.Round(time.Millisecond))
	for i := 0; i < 50; i++ {
		insts, err := r.Instances(context.Background(), svc)
		if err != nil || ids(insts) != svc+"-1" {
			t.Fatalf("Instances during the outage = %v, %v; want the cached set", insts, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := r.logs.count("consul: unreachable"); n != 1 {
		t.Fatalf("outage logged %d times, want once", n)
	}

	p.start()
	took = waitFor(t, 5*time.Second, "reachable again", func() bool { return value(r.m.reachable) == 1 })
	t.Logf("recovery noticed after %s", took.Round(time.Millisecond))
	waitFor(t, 3*time.Second, "still listed", instancesAre(r.Registry, svc, svc+"-1"))
}

// TestConsulRegistrationsLostWhileUnreachable is what an agent restart looks like from the
// registry when the restart cannot be done from the test: the agent forgets our instance
// while we cannot reach it.
func TestConsulRegistrationsLostWhileUnreachable(t *testing.T) {
	addr := agentAddr(t)
	agent := direct(t, addr)
	p := startProxy(t, addr)
	r := newHarness(t, testConfig(p.addr))
	svc := unique("glimpse-test-lost")
	h := newHealthServer(t)
	id := svc + "-1"
	if err := r.Register(context.Background(), registry.Instance{ID: id, Service: svc, Address: h.URL}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "listed", instancesAre(r.Registry, svc, id))
	p.stop()
	if err := agent.Agent().ServiceDeregister(id); err != nil {
		t.Fatal(err)
	}
	p.start()
	start := time.Now()
	waitFor(t, 5*time.Second, "registered again", func() bool { return agentKnows(t, agent, id) })
	back := time.Since(start)
	waitFor(t, 5*time.Second, "listed again after its first passing check", instancesAre(r.Registry, svc, id))
	t.Logf("re-registered %s after the agent was reachable again; healthy again after %s", back.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestConsulAgentRestart restarts the agent for real with the command in
// GLIMPSE_TEST_CONSUL_RESTART, e.g. "$PWD/deploy/local/consul.sh restart" (a dev agent
// loses every registration on restart). Only use it with an agent of your own.
func TestConsulAgentRestart(t *testing.T) {
	addr := agentAddr(t)
	restart := os.Getenv(envConsulRestart)
	if restart == "" {
		t.Skipf("set %s to a shell command that restarts the agent at %s (e.g. \"$PWD/deploy/local/consul.sh restart\" with that agent's GLIMPSE_CONSUL_* variables) to run this test", envConsulRestart, addr)
	}
	agent := direct(t, addr)
	r := newHarness(t, testConfig(addr))
	svc := unique("glimpse-test-restart")
	h := newHealthServer(t)
	id := svc + "-1"
	if err := r.Register(context.Background(), registry.Instance{ID: id, Service: svc, Address: h.URL}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "listed", instancesAre(r.Registry, svc, id))

	start := time.Now()
	cmd := exec.Command("sh", "-c", restart)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	// While the agent is down and coming back, lookups keep answering the cached set.
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("restart command %q: %v", restart, err)
			}
			running = false
		case <-time.After(50 * time.Millisecond):
			if insts, err := r.Instances(context.Background(), svc); err != nil || len(insts) > 1 {
				t.Fatalf("Instances during the restart = %v, %v", insts, err)
			}
		}
	}
	restarted := time.Since(start)
	waitFor(t, 10*time.Second, "registered again after the restart", func() bool { return agentKnows(t, agent, id) })
	back := time.Since(start)
	waitFor(t, 10*time.Second, "healthy again after the restart", instancesAre(r.Registry, svc, id))
	t.Logf("agent restart took %s; our instance was registered again %s after the restart began and listed as healthy after %s",
		restarted.Round(time.Millisecond), back.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if value(r.m.reregistrations) < 1 {
		t.Fatal("no re-registration counted")
	}
}

// proxy forwards TCP to the agent and can be cut off (connections refused and reset) and
// restored on the same address, to take Consul away from the registry only.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func (p *proxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *proxy) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
