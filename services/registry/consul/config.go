package consul

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Config holds the settings of the Consul registry.
type Config struct {
	// Address of the Consul agent's HTTP API: host:port, or a URL with http://, https:// or
	// unix://.
	Address string
	// Token is the ACL token sent with every request; empty uses CONSUL_HTTP_TOKEN, if set.
	Token string
	// Datacenter to register in and look up; empty means the agent's own.
	Datacenter string
	// CheckInterval is how often the agent calls an instance's /healthz.
	CheckInterval time.Duration
	// CheckTimeout bounds one /healthz call; a slower answer fails the check.
	CheckTimeout time.Duration
	// DeregisterCriticalAfter is how long an instance may fail its check before Consul
	// removes it (a process that died without deregistering).
	DeregisterCriticalAfter time.Duration
	// WatchWait is how long one blocking query waits for a change before it is repeated. It
	// also bounds how long a watch can sit on a connection that silently died.
	WatchWait time.Duration
	// RequestTimeout bounds every call that is not a blocking query (register, deregister,
	// the agent check of the re-registration loop); blocking queries get WatchWait on top.
	RequestTimeout time.Duration
	// Zone is the availability zone of this process, added as the tag "zone=<zone>" and the
	// meta key "zone" to every instance it registers (unless the instance names its own).
	Zone string
}

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		Address:                 "127.0.0.1:8500",
		CheckInterval:           5 * time.Second,
		CheckTimeout:            2 * time.Second,
		DeregisterCriticalAfter: time.Minute,
		WatchWait:               30 * time.Second,
		RequestTimeout:          5 * time.Second,
	}
}

// RegisterFlags adds the settings under the "consul." prefix; the current values of c are
// the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Address, "consul.address", c.Address,
		"Consul agent HTTP address: host:port, or a URL with http://, https:// or unix://")
	fs.StringVar(&c.Token, "consul.token", c.Token,
		"Consul ACL token (empty: the CONSUL_HTTP_TOKEN environment variable, if set)")
	fs.StringVar(&c.Datacenter, "consul.datacenter", c.Datacenter,
		"Consul datacenter to register in and look up (empty: the agent's own)")
	fs.DurationVar(&c.CheckInterval, "consul.check-interval", c.CheckInterval,
		"how often Consul calls each registered instance's /healthz (duration; Consul's minimum is 1s)")
	fs.DurationVar(&c.CheckTimeout, "consul.check-timeout", c.CheckTimeout,
		"how long one /healthz call may take before the check fails (duration)")
	fs.DurationVar(&c.DeregisterCriticalAfter, "consul.deregister-critical-after", c.DeregisterCriticalAfter,
		"how long an instance may fail its health check before Consul removes it (duration; Consul's minimum is 1m)")
	fs.DurationVar(&c.WatchWait, "consul.watch-wait", c.WatchWait,
		"how long one blocking query for healthy instances waits for a change before it is repeated (duration, at most 10m)")
	fs.DurationVar(&c.RequestTimeout, "consul.request-timeout", c.RequestTimeout,
		"how long a register, deregister or agent call may take (duration); blocking queries get consul.watch-wait on top")
	fs.StringVar(&c.Zone, "consul.zone", c.Zone,
		"availability zone of this process, added to its registrations as the tag zone=<zone> and the meta key zone (empty: none)")
}

// Validate reports the settings that cannot work.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Address) == "" {
		errs = append(errs, errors.New("consul.address must not be empty (e.g. 127.0.0.1:8500)"))
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"consul.check-interval", c.CheckInterval},
		{"consul.check-timeout", c.CheckTimeout},
		{"consul.deregister-critical-after", c.DeregisterCriticalAfter},
		{"consul.watch-wait", c.WatchWait},
		{"consul.request-timeout", c.RequestTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", p.name, p.d))
		}
	}
	if c.CheckInterval > 0 && c.CheckTimeout > c.CheckInterval {
		errs = append(errs, fmt.Errorf("consul.check-timeout (%s) must not exceed consul.check-interval (%s)", c.CheckTimeout, c.CheckInterval))
	}
	if c.WatchWait > 10*time.Minute {
		errs = append(errs, fmt.Errorf("consul.watch-wait is %s; Consul caps blocking queries at 10m", c.WatchWait))
	}
	return errors.Join(errs...)
}
