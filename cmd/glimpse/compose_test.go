package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	yaml "go.yaml.in/yaml/v4"
)

// The compose deployment (deploy/compose) names targets, settings and ports of this binary.
// These tests load it with compose-go, the loader `docker compose` itself uses (with the
// compose-spec schema validation), and compare it with the settings `glimpse <target> --help`
// prints, so that renaming a target, a flag or a default port fails here rather than in an
// operator's `docker compose up`.

const composeDir = "../../deploy/compose"

// composeServices are the services the deployment must have.
var composeServices = []string{"consul", "kafka", "cassandra", "migrate", "gateway", "collector", "processor", "query", "prometheus", "grafana"}

// scalableServices are run with --scale: no fixed names, no host ports, no fixed addresses.
var scalableServices = []string{"collector", "processor", "query"}

// longRunningTargets serve HTTP until stopped; the other commands run once and exit.
var longRunningTargets = []string{"all", "gateway", "collector", "processor", "query"}

// commandSettings are the settings of one command, as its --help lists them.
type commandSettings struct {
	defaults map[string]string // flag name → default value
	flagOf   map[string]string // GLIMPSE_* variable → flag name
}

// settingsOf runs `glimpse <args...> --help` and reads the settings it lists.
func settingsOf(args []string) (commandSettings, error) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(slices.Clone(args), "--help"), &stdout, &stderr); code != 0 {
		return commandSettings{}, fmt.Errorf("glimpse %s --help exited %d: %s", strings.Join(args, " "), code, strings.TrimSpace(stderr.String()))
	}
	s := commandSettings{defaults: map[string]string{}, flagOf: map[string]string{}}
	current := ""
	for line := range strings.SplitSeq(stdout.String(), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "  --"):
			current = strings.Fields(trimmed)[0][2:]
			s.defaults[current] = ""
		case current != "" && strings.HasPrefix(trimmed, "env GLIMPSE_"):
			s.flagOf[strings.TrimPrefix(trimmed, "env ")] = current
		case current != "" && strings.HasSuffix(trimmed, `")`):
			if i := strings.LastIndex(trimmed, `(default "`); i >= 0 {
				if v, err := strconv.Unquote(trimmed[i+len(`(default `) : len(trimmed)-1]); err == nil {
					s.defaults[current] = v
				}
			}
		}
	}
	if len(s.defaults) == 0 {
		return s, fmt.Errorf("glimpse %s --help lists no settings", strings.Join(args, " "))
	}
	return s, nil
}

func isCommand(name string) bool {
	for _, c := range commands() {
		if c.name == name {
			return true
		}
	}
	return false
}

// loadCompose loads a compose file with every profile enabled and no environment from the
// machine running the test, so that the defaults written in the file are what is checked.
func loadCompose(file, projectDir string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(projectDir), cli.WithName("glimpse"), cli.WithEnv(nil),
		cli.WithProfiles([]string{"*"}), cli.WithResolvedPaths(true))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// composeReport is what checking a compose file found.
type composeReport struct {
	problems []string
	// ports are the HTTP ports of the long-running Glimpse services, by service.
	ports map[string]string
}

func (r *composeReport) addf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// checkCompose loads file (relative paths resolved from projectDir, the directory of the real
// file) and returns everything in it that does not hold.
func checkCompose(file, projectDir string) (*composeReport, error) {
	p, err := loadCompose(file, projectDir)
	if err != nil {
		return nil, fmt.Errorf("compose file does not load (as `docker compose config` would refuse it): %w", err)
	}
	repoRoot, err := filepath.Abs(filepath.Join(projectDir, "../.."))
	if err != nil {
		return nil, err
	}
	r := &composeReport{ports: map[string]string{}}
	services := p.AllServices()
	for _, name := range composeServices {
		if _, ok := services[name]; !ok {
			r.addf("service %s is missing", name)
		}
	}
	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	sort.Strings(names)

	glimpseImage := ""
	for _, name := range names {
		svc := services[name]
		checkDependsOn(r, services, svc)
		if slices.Contains(scalableServices, name) {
			if svc.ContainerName != "" {
				r.addf("%s: container_name %q stops `--scale %s=N` (names must be unique); remove it", name, svc.ContainerName, name)
			}
			for _, port := range svc.Ports {
				if port.Published != "" {
					r.addf("%s: publishes host port %s, which only one replica can hold under --scale; reach it through the gateway", name, port.Published)
				}
			}
			if _, ok := svc.Environment["GLIMPSE_ADVERTISE_ADDR"]; ok {
				r.addf("%s: GLIMPSE_ADVERTISE_ADDR would give every replica the same address; leave it unset so each advertises its own hostname", name)
			}
		}
		if svc.Build == nil {
			if len(svc.Profiles) == 0 && svc.HealthCheck == nil {
				r.addf("%s: no healthcheck, so nothing can wait for it with condition: service_healthy", name)
			}
			continue
		}
		// Built from the repository: a Glimpse target.
		if svc.Build.Context != repoRoot || svc.Build.Dockerfile != "Dockerfile" {
			r.addf("%s: build context %q, dockerfile %q: want the repository root %q and its Dockerfile", name, svc.Build.Context, svc.Build.Dockerfile, repoRoot)
		}
		if glimpseImage == "" {
			glimpseImage = svc.Image
		} else if svc.Image != glimpseImage {
			r.addf("%s: image %q differs from %q: every target runs the one image", name, svc.Image, glimpseImage)
		}
		checkGlimpseService(r, services, svc)
	}
	return r, nil
}

// checkDependsOn requires dependencies that wait for something meaningful: a healthy engine
// or a one-shot job that succeeded.
func checkDependsOn(r *composeReport, services types.Services, svc types.ServiceConfig) {
	for dep, cond := range svc.DependsOn {
		target, ok := services[dep]
		if !ok {
			r.addf("%s: depends on unknown service %s", svc.Name, dep)
			continue
		}
		switch cond.Condition {
		case types.ServiceConditionHealthy:
			if target.HealthCheck == nil || target.HealthCheck.Disable {
				r.addf("%s: waits for %s to be healthy, but %s has no healthcheck", svc.Name, dep, dep)
			}
		case types.ServiceConditionCompletedSuccessfully:
			if target.Restart != "" && target.Restart != types.RestartPolicyNo {
				r.addf("%s: waits for %s to complete, but %s restarts (%s)", svc.Name, dep, dep, target.Restart)
			}
		default:
			r.addf("%s: depends on %s with condition %q; use service_healthy or service_completed_successfully", svc.Name, dep, cond.Condition)
		}
	}
}

// env returns the value a service sets for a variable, and whether it sets it.
func env(svc types.ServiceConfig, name string) (string, bool) {
	v, ok := svc.Environment[name]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func checkGlimpseService(r *composeReport, services types.Services, svc types.ServiceConfig) {
	name := svc.Name
	if len(svc.Command) == 0 {
		r.addf("%s: no command: name the target (e.g. command: [\"collector\"]); the image's default is `all`", name)
		return
	}
	target := svc.Command[0]
	if !isCommand(target) {
		r.addf("%s: command %q is not a glimpse target (see glimpse --help)", name, target)
		return
	}
	settings, err := settingsOf(svc.Command)
	if err != nil {
		r.addf("%s: %v", name, err)
		return
	}

	// Every GLIMPSE_* variable must be a setting of this target, with a value it accepts.
	var args []string
	vars := make([]string, 0, len(svc.Environment))
	for k := range svc.Environment {
		vars = append(vars, k)
	}
	sort.Strings(vars)
	for _, k := range vars {
		if !strings.HasPrefix(k, "GLIMPSE_") {
			continue
		}
		flagName, ok := settings.flagOf[k]
		if !ok {
			r.addf("%s: %s is not a setting of `glimpse %s` (see glimpse %s --help)", name, k, strings.Join(svc.Command, " "), strings.Join(svc.Command, " "))
			continue
		}
		v, _ := env(svc, k)
		args = append(args, "--"+flagName+"="+v)
		if flagName == "memory-limit" {
			if _, err := parseBytes(v); err != nil {
				r.addf("%s: %s=%q: %v", name, k, v, err)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	withValues := append(append(slices.Clone([]string(svc.Command)), args...), "--help")
	if code := run(context.Background(), withValues, &stdout, &stderr); code != 0 {
		r.addf("%s: `glimpse %s` refuses the environment's values: %s", name, strings.Join(svc.Command, " "), strings.TrimSpace(stderr.String()))
	}

	setting := func(flagName string) string {
		if v, ok := env(svc, envName(flagName)); ok {
			return v
		}
		return settings.defaults[flagName]
	}
	requireEngine := func(what, flagName, dependency string, cond string) {
		for _, hostport := range strings.Split(setting(flagName), ",") {
			host := hostport
			if h, _, err := net.SplitHostPort(hostport); err == nil {
				host = h
			}
			if _, ok := services[host]; !ok {
				r.addf("%s: --%s=%s: %q is not a service of this file, so it does not resolve in the compose network", name, flagName, setting(flagName), host)
			}
		}
		if got := svc.DependsOn[dependency].Condition; got != cond {
			r.addf("%s: uses %s but does not wait for %s with condition %s", name, what, dependency, cond)
		}
	}
	if setting("store") == "cassandra" {
		if target == "migrate" {
			requireEngine("Cassandra", "cassandra.hosts", "cassandra", types.ServiceConditionHealthy)
		} else {
			requireEngine("Cassandra", "cassandra.hosts", "migrate", types.ServiceConditionCompletedSuccessfully)
		}
	}
	if setting("bus") == "kafka" {
		requireEngine("Kafka", "kafka.brokers", "kafka", types.ServiceConditionHealthy)
	}
	if setting("registry") == "consul" {
		requireEngine("Consul", "consul.address", "consul", types.ServiceConditionHealthy)
	}

	if !slices.Contains(longRunningTargets, target) {
		if len(svc.Profiles) == 0 && svc.Restart != types.RestartPolicyNo {
			r.addf("%s: `glimpse %s` runs once; set restart: \"no\" so it is not started again after it succeeds", name, target)
		}
		return
	}
	if setting("registry") != "consul" {
		r.addf("%s: a fleet target must find its peers through Consul: set GLIMPSE_REGISTRY=consul", name)
	}
	_, port, err := net.SplitHostPort(setting("addr"))
	if err != nil {
		r.addf("%s: --addr=%q is not host:port: %v", name, setting("addr"), err)
		return
	}
	r.ports[name] = port
	// The file keeps each target on its default port, so the ports in the docs, the Dockerfile's
	// EXPOSE and `glimpse <target> --help` all agree.
	if _, defPort, err := net.SplitHostPort(settings.defaults["addr"]); err == nil && defPort != port {
		r.addf("%s: listens on %s, but the default port of `glimpse %s` is %s: keep the default (or change both)", name, port, target, defPort)
	}
	for _, p := range svc.Ports {
		if strconv.Itoa(int(p.Target)) != port {
			r.addf("%s: maps container port %d, but `glimpse %s` listens on %s (--addr)", name, p.Target, target, port)
		}
	}
	for _, p := range svc.Expose {
		if p != port {
			r.addf("%s: exposes port %s, but `glimpse %s` listens on %s (--addr)", name, p, target, port)
		}
	}
	checkHealthcheck(r, svc, port)
}

// checkHealthcheck requires `glimpse healthcheck` (the image has no shell or curl) on the
// service's own /readyz.
func checkHealthcheck(r *composeReport, svc types.ServiceConfig, port string) {
	hc := svc.HealthCheck
	if hc == nil || hc.Disable {
		r.addf("%s: no healthcheck: add test: [\"CMD\", \"/glimpse\", \"healthcheck\", \"--url=http://127.0.0.1:%s/readyz\"]", svc.Name, port)
		return
	}
	test := []string(hc.Test)
	if len(test) < 3 || test[0] != "CMD" || test[1] != "/glimpse" || test[2] != "healthcheck" {
		r.addf("%s: healthcheck %q: use the exec form [\"CMD\", \"/glimpse\", \"healthcheck\", ...]: the image has no shell", svc.Name, test)
		return
	}
	if _, err := settingsOf(test[2:3]); err != nil {
		r.addf("%s: healthcheck: %v", svc.Name, err)
	}
	for _, arg := range test[3:] {
		raw, ok := strings.CutPrefix(arg, "--url=")
		if !ok {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Port() != port || u.Path != "/readyz" {
			r.addf("%s: healthcheck calls %q: want http://127.0.0.1:%s/readyz (the port of --addr)", svc.Name, raw, port)
		}
		return
	}
	r.addf("%s: healthcheck names no --url; the default port 8080 is not every target's", svc.Name)
}

func TestComposeFileMatchesTheBinary(t *testing.T) {
	rep, err := checkCompose(filepath.Join(composeDir, "docker-compose.yml"), composeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.problems {
		t.Error(p)
	}
	for _, name := range []string{"gateway", "collector", "processor", "query"} {
		if rep.ports[name] == "" {
			t.Errorf("%s: not checked as a long-running Glimpse target", name)
		}
	}
}

// TestComposeCheckCatchesDrift proves the check above can fail: each edit below is what a
// rename in the code (or a careless edit of the file) looks like from the file's side.
func TestComposeCheckCatchesDrift(t *testing.T) {
	real, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, want string
	}{
		{"renamed target", `command: ["processor"]`, `command: ["proccessor"]`, `"proccessor" is not a glimpse target`},
		{"renamed setting", `GLIMPSE_PROCESSOR_GROUP:`, `GLIMPSE_PROCESSOR_CONSUMER_GROUP:`, "GLIMPSE_PROCESSOR_CONSUMER_GROUP is not a setting"},
		{"setting of another target", "      GLIMPSE_ADDR: \":8082\"\n", "      GLIMPSE_ADDR: \":8082\"\n      GLIMPSE_KAFKA_BROKERS: kafka:9092\n", "query: GLIMPSE_KAFKA_BROKERS is not a setting"},
		{"value the flag refuses", `GLIMPSE_KAFKA_PARTITIONS: "12"`, `GLIMPSE_KAFKA_PARTITIONS: "twelve"`, "refuses the environment's values"},
		{"port that is not --addr", `GLIMPSE_ADDR: ":8082"`, `GLIMPSE_ADDR: ":9082"`, "query: healthcheck calls"},
		{"fixed name on a scaled service", "    command: [\"collector\"]\n", "    command: [\"collector\"]\n    container_name: glimpse-collector\n", "container_name"},
		{"host port on a scaled service", "    command: [\"query\"]\n", "    command: [\"query\"]\n    ports: [\"8082:8082\"]\n", "publishes host port 8082"},
		{"dependency without a condition", "      migrate:\n        condition: service_completed_successfully\n", "      migrate:\n        condition: service_started\n", `condition "service_started"`},
		{"engine outside the project", `GLIMPSE_CONSUL_ADDRESS: consul:8500`, `GLIMPSE_CONSUL_ADDRESS: consul.internal:8500`, `"consul.internal" is not a service`},
		{"attribute outside the compose schema", "    command: [\"gateway\"]\n", "    command: [\"gateway\"]\n    replicaz: 2\n", "does not load"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(real, []byte(tc.old)) {
				t.Fatalf("the compose file no longer contains %q: update this case", tc.old)
			}
			file := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(file, bytes.Replace(real, []byte(tc.old), []byte(tc.new), 1), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := checkCompose(file, composeDir)
			var found []string
			if err != nil {
				found = []string{err.Error()}
			} else {
				found = rep.problems
			}
			for _, p := range found {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("edit %q → %q: want a problem containing %q, got %q", tc.old, tc.new, tc.want, found)
		})
	}
}

// TestPrometheusScrapesEveryService checks that prometheus.yml finds each long-running Glimpse
// service by its compose name on the port it listens on.
func TestPrometheusScrapesEveryService(t *testing.T) {
	rep, err := checkCompose(filepath.Join(composeDir, "docker-compose.yml"), composeDir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(composeDir, "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.DNSSDConfigs {
			for _, name := range sd.Names {
				want, ok := rep.ports[name]
				if !ok {
					t.Errorf("job %s: %q is not a long-running Glimpse service of the compose file", sc.JobName, name)
					continue
				}
				if strconv.Itoa(sd.Port) != want {
					t.Errorf("job %s: scrapes %s on port %d, but it listens on %s", sc.JobName, name, sd.Port, want)
				}
				if sd.Type != "A" {
					t.Errorf("job %s: dns_sd type %q: use A, which lists every replica", sc.JobName, sd.Type)
				}
				scraped[name] = true
			}
		}
	}
	for name := range rep.ports {
		if !scraped[name] {
			t.Errorf("compose service %s is not scraped by prometheus.yml", name)
		}
	}
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join(composeDir, "prometheus", f)); err != nil {
			t.Errorf("rule file %s: %v (it must sit next to prometheus.yml, which is mounted as one directory)", f, err)
		}
	}
}
