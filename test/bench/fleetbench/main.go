// Command fleetbench measures the fleet on Kafka and Cassandra (the engines of `make
// engines-up`), each step with the tools a person would use, in a keyspace and topics of its
// own that it removes at the end:
//
//  1. publish: `glimpse loadgen` against `glimpse collector --bus=kafka` (events/s acknowledged,
//     latency percentiles);
//  2. drain: test/bench/bulkload publishes N events spread over 30 days to a fresh topic, then
//     `glimpse processor` consumes them into Cassandra: events/s, rows written/s, read from
//     the processor's and the store's metrics while it runs;
//  3. query: test/bench/querybench, the dashboard's 30-day time series + top pages, against
//     `glimpse query --store=cassandra` over what step 2 loaded.
//
// test/bench/fleet.sh builds the binaries and runs it; docs/benchmarks.md has the numbers.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gocql/gocql"
	kafkago "github.com/segmentio/kafka-go"
)

var (
	bin        = flag.String("bin", "./bin", "directory holding glimpse, bulkload and querybench")
	kafka      = flag.String("kafka", "127.0.0.1:9092", "Kafka bootstrap broker")
	cassandra  = flag.String("cassandra", "127.0.0.1:9042", "Cassandra contact point")
	events     = flag.Int("events", 200_000, "beacons glimpse loadgen sends to the collector (step 1; 0 skips it)")
	concurrent = flag.String("concurrency", "16,64", "comma-separated loadgen concurrencies to run step 1 with")
	bulk       = flag.Int("bulk", 2_000_000, "events bulkload publishes for the processor to drain (step 2; 0 skips steps 2 and 3)")
	partitions = flag.Int("partitions", 6, "partitions of the topics")
	processors = flag.Int("processors", 1, "processors draining the bulk topic")
	procStore  = flag.String("processor-store", "cassandra", "store the draining processors write to: cassandra, or memory to measure consuming and aggregating alone (steps 2 only; the query step is skipped)")
	queries    = flag.Int("queries", 200, "measured querybench repetitions (step 3; 0 skips it)")
	keep       = flag.Bool("keep", false, "keep the keyspace and topics")
	pidFiles   = flag.String("engine-pids", ".cache/run/kafka/kafka.pid,.cache/run/cassandra/cassandra.pid", "PID files of the Kafka and Cassandra processes, to report the CPU time they use during each step (deploy/local's defaults)")
	remove     = flag.String("remove", "", "only remove the keyspace and topics of an earlier run (the keyspace name it printed, e.g. bench1764130000), then exit")
)

func main() {
	flag.Parse()
	if *remove != "" {
		cleanup(*remove, *remove+"-beacons", *remove+"-bulk")
		return
	}
	run := fmt.Sprintf("bench%d", time.Now().Unix())
	ks, beacons, bulkTopic := run, run+"-beacons", run+"-bulk"
	work, err := os.MkdirTemp("", "fleetbench")
	check(err)
	var (
		mu    sync.Mutex
		procs []*exec.Cmd
		once  sync.Once
	)
	finish := func() {
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range procs {
				_ = p.Process.Signal(os.Interrupt)
				_, _ = p.Process.Wait()
			}
			if !*keep {
				cleanup(ks, beacons, bulkTopic)
			}
			os.RemoveAll(work)
		})
	}
	defer finish()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		finish()
		os.Exit(1)
	}()
	store := []string{"--store=cassandra", "--cassandra.hosts=" + *cassandra, "--cassandra.keyspace=" + ks}
	busFlags := []string{"--bus=kafka", "--kafka.brokers=" + *kafka, "--kafka.partitions=" + strconv.Itoa(*partitions)}
	common := []string{"--data-dir=" + work, "--log.level=warn", "--registry=inproc"}
	glimpse := filepath.Join(*bin, "glimpse")
	cli(glimpse, append([]string{"migrate"}, store...)...)
	cli(glimpse, append([]string{"sites", "add", "bench.example"}, store...)...)
	start := func(name string, args ...string) (*exec.Cmd, string) {
		addr := freeAddr()
		cmd := exec.Command(glimpse, append(append([]string{name, "--addr=" + addr}, common...), args...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		check(cmd.Start())
		mu.Lock()
		procs = append(procs, cmd)
		mu.Unlock()
		url := "http://" + addr
		for i := 0; ; i++ {
			if resp, err := http.Get(url + "/readyz"); err == nil && resp.StatusCode == 200 {
				resp.Body.Close()
				return cmd, url
			}
			if i > 600 {
				log.Fatalf("%s not ready", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS), Kafka %s, Cassandra %s; keyspace %s\n", runtime.NumCPU(), *kafka, *cassandra, ks)

	if *events > 0 {
		ceiling := filepath.Join(*bin, "ceiling")
		var ceilingCmd *exec.Cmd
		var ceilingURL string
		if _, err := os.Stat(ceiling); err == nil {
			addr := freeAddr()
			ceilingCmd = exec.Command(ceiling, "-addr", addr)
			check(ceilingCmd.Start())
			mu.Lock()
			procs = append(procs, ceilingCmd)
			mu.Unlock()
			ceilingURL = "http://" + addr
			time.Sleep(300 * time.Millisecond)
		}
		collectorCmd, collector := start("collector", append(append(busFlags, store...), "--collector.topic="+beacons)...)
		for _, c := range strings.Split(*concurrent, ",") {
			if ceilingURL != "" {
				fmt.Printf("\n== ceiling: glimpse loadgen --events=%d --concurrency=%s → bare net/http handler (test/bench/ceiling)\n", *events, c)
				soft(glimpse, "loadgen", "--target="+ceilingURL, "--events="+strconv.Itoa(*events), "--concurrency="+c, "--sites=bench.example", "--seed=1")
			}
			fmt.Printf("\n== publish: glimpse loadgen --events=%d --concurrency=%s → glimpse collector --bus=kafka (%d partitions)\n", *events, c, *partitions)
			cpu := cpuMeter(map[string]*exec.Cmd{"collector": collectorCmd})
			soft(glimpse, "loadgen", "--target="+collector, "--events="+strconv.Itoa(*events), "--concurrency="+c, "--sites=bench.example", "--seed=1")
			cpu()
		}
	}
	if *bulk == 0 {
		return
	}

	drainStore := store
	switch *procStore {
	case "cassandra":
	case "memory":
		drainStore = []string{"--store=memory"}
	default:
		log.Fatalf("--processor-store=%q: use cassandra or memory", *procStore)
	}
	fmt.Printf("\n== drain: bulkload --kafka --events=%d (30 days), then %d × glimpse processor --bus=kafka --store=%s\n", *bulk, *processors, *procStore)
	out := cli(filepath.Join(*bin, "bulkload"), "--kafka="+*kafka, "--topic="+bulkTopic, "--partitions="+strconv.Itoa(*partitions), "--events="+strconv.Itoa(*bulk))
	var published, pageviews int
	if _, err := fmt.Sscanf(out[strings.Index(out, "published "):], "published %d events (%d page views)", &published, &pageviews); err != nil {
		log.Fatalf("bulkload output %q: %v", out, err)
	}
	_, query := start("query", append(store, "--query.auth=false")...)
	var urls []string
	procCmds := map[string]*exec.Cmd{}
	t0 := time.Now()
	cpu := cpuMeter(procCmds)
	for i := 0; i < *processors; i++ {
		c, u := start("processor", append(append(busFlags, drainStore...), "--processor.topic="+bulkTopic, "--processor.group="+run+"-processors")...)
		urls = append(urls, u)
		procCmds[fmt.Sprintf("processor-%d", i+1)] = c
	}
	sum := func(name string) float64 {
		total := 0.0
		for _, u := range urls {
			total += metric(u, name)
		}
		return total
	}
	var firstAt time.Time
	last := time.Now()
	for {
		n := sum("glimpse_processor_events_processed_total")
		if n > 0 && firstAt.IsZero() {
			firstAt = time.Now()
		}
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			fmt.Printf("  %.0f events processed after %s\n", n, time.Since(t0).Round(time.Second))
		}
		if int(n) >= published {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	rows, storeRows := sum("glimpse_processor_rows_written_total"), sum("glimpse_store_rows_written_total")
	stored := sum("glimpse_store_events_written_total")
	fmt.Printf("processor: %d events in %s = %.0f events/s (from start, group join included; %.0f events/s from the first flush)\n",
		published, elapsed.Round(100*time.Millisecond), float64(published)/elapsed.Seconds(), float64(published)/time.Since(firstAt).Seconds())
	cpu()
	fmt.Printf("%s: %.0f rollup rows (%.0f store rows) + %.0f events written = %.0f rollup rows/s, %.0f (rows+events)/s\n",
		*procStore, rows, storeRows, stored, rows/elapsed.Seconds(), (storeRows+stored)/elapsed.Seconds())
	if *procStore != "cassandra" {
		return // the processors' store is theirs alone: no query service can read it
	}
	if *queries == 0 {
		return
	}

	fmt.Printf("\n== query: querybench over the 30 days (glimpse query --store=cassandra)\n")
	cli(filepath.Join(*bin, "querybench"), "--target="+query, "--wait-pageviews="+strconv.Itoa(pageviews), "--n=0", "--warmup=0")
	cli(filepath.Join(*bin, "querybench"), "--target="+query, "--n="+strconv.Itoa(*queries), "--warmup=20")
}

// cli runs a command, echoes its output and returns it.
func cli(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	fmt.Print(string(out))
	if err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// cpuMeter starts measuring the CPU time of the given processes and of the engines (the
// PID files of --engine-pids); the returned func prints each one's share of the wall time.
func cpuMeter(cmds map[string]*exec.Cmd) func() {
	pids := map[string]int{}
	for name, c := range cmds {
		pids[name] = c.Process.Pid
	}
	for _, f := range strings.Split(*pidFiles, ",") {
		raw, err := os.ReadFile(f)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && perr == nil {
			pids[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	start, t0 := map[string]float64{}, time.Now()
	for name, pid := range pids {
		start[name] = cpuSeconds(pid)
	}
	return func() {
		// processes added to cmds after the start (processors) count from zero
		for name, c := range cmds {
			if _, ok := pids[name]; !ok {
				pids[name] = c.Process.Pid
			}
		}
		wall := time.Since(t0).Seconds()
		var parts []string
		for name, pid := range pids {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*(cpuSeconds(pid)-start[name])/wall))
		}
		sort.Strings(parts)
		fmt.Printf("CPU over %.1fs (100%% = one core): %s; load average %s\n", wall, strings.Join(parts, ", "), loadavg())
	}
}

// cpuSeconds is the user+system CPU time of a process so far.
func cpuSeconds(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// soft runs a command like cli but only reports a failure (loadgen exits 1 when a beacon
// was not acknowledged; the numbers are still the point).
func soft(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	fmt.Print(string(out))
	if err != nil {
		fmt.Printf("(%s exited: %v)\n", filepath.Base(name), err)
	}
}

// metric sums the samples of a metric on url/metrics.
func metric(url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		rest := line[len(name):]
		f := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(f) > 0 {
			v, _ := strconv.ParseFloat(f[0], 64)
			total += v
		}
	}
	return total
}

func cleanup(ks string, topics ...string) {
	cluster := gocql.NewCluster(*cassandra)
	cluster.Timeout = time.Minute
	cluster.DisableInitialHostLookup = true
	if sess, err := cluster.CreateSession(); err == nil {
		if err := sess.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
			log.Printf("drop keyspace %s: %v", ks, err)
		}
		sess.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(*kafka), Timeout: 30 * time.Second}
	if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics}); err != nil {
		log.Printf("delete topics: %v", err)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
