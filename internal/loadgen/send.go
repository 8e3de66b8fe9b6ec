package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// SendOptions control how a plan is sent.
//
// Retries are safe against double counting when the server drops resends. A failed attempt
// may have reached the server's bus all the same (a broker stored the event, then the
// publish timed out and the collector answered 503), but every resend carries the beacon's
// id ("eid"), and Glimpse's processor drops an event whose id its visit has already seen:
// the beacon counts once. A server that ignores ids may count it twice.
type SendOptions struct {
	Target      string        // base URL of a gateway or collector, e.g. http://127.0.0.1:8080
	Concurrency int           // visits sent at once (each visit's beacons go in order); default 32
	Rate        float64       // beacons per second over all workers; 0 = as fast as possible
	Duration    time.Duration // stop starting new visits after this long; 0 = send the whole plan
	Timeout     time.Duration // per request; default 10s
	Retries     int           // resend a beacon that got 503/429 or a connection error up to this often (see above)
	Progress    func(sent, acked, failed int64)
}

// Report says what happened to every beacon.
type Report struct {
	Sent, Acked, Failed int64
	Elapsed             time.Duration
	Latencies           []time.Duration // of acknowledged beacons, sorted
	// Outcome[visit][beacon] is true when that beacon got a 2xx.
	Outcome [][]bool
	// Errors counts failures by cause (status code or error text).
	Errors map[string]int64
}

// Percentile returns the p-th percentile (0..100) of acknowledged latencies.
func (r *Report) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies)-1) * p / 100)
	return r.Latencies[i]
}

// Rate is the acknowledged beacons per second.
func (r *Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// Acked reports whether beacon b of visit v got a 2xx.
func (r *Report) AckedBeacon(v, b int) bool { return r.Outcome[v][b] }

// Send delivers the plan's visits to o.Target and reports what was acknowledged. It stops
// early when ctx ends; beacons never attempted count as neither sent nor failed.
func Send(ctx context.Context, p *Plan, o SendOptions) *Report {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	client := &http.Client{
		Timeout: o.Timeout,
		Transport: &http.Transport{
			MaxIdleConns: o.Concurrency * 2, MaxIdleConnsPerHost: o.Concurrency * 2,
			IdleConnTimeout: 30 * time.Second, DisableCompression: true,
		},
	}
	defer client.CloseIdleConnections()
	var limiter *rate.Limiter
	if o.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/100)))
	}
	rep := &Report{Outcome: make([][]bool, len(p.Visits)), Errors: map[string]int64{}}
	for i, v := range p.Visits {
		rep.Outcome[i] = make([]bool, len(v.Beacons))
	}
	var (
		sent, acked, failed atomic.Int64
		mu                  sync.Mutex
		lat                 []time.Duration
		next                atomic.Int64
		wg                  sync.WaitGroup
	)
	start := time.Now()
	deadline := time.Time{}
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	endpoint := o.Target + "/api/event"
	for w := 0; w < o.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var localLat []time.Duration
			defer func() { mu.Lock(); lat = append(lat, localLat...); mu.Unlock() }()
			for {
				vi := int(next.Add(1) - 1)
				if vi >= len(p.Visits) || ctx.Err() != nil || (!deadline.IsZero() && time.Now().After(deadline)) {
					return
				}
				v := p.Visits[vi]
				for bi, b := range v.Beacons {
					if limiter != nil && limiter.Wait(ctx) != nil {
						return
					}
					body, _ := json.Marshal(b.body())
					t0 := time.Now()
					var cause string
					for attempt := 0; attempt <= o.Retries; attempt++ {
						if attempt > 0 {
							time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
						}
						cause = post(ctx, client, endpoint, body, v)
						if cause == "" || !retryable(cause) {
							break
						}
					}
					sent.Add(1)
					if cause == "" {
						acked.Add(1)
						rep.Outcome[vi][bi] = true
						localLat = append(localLat, time.Since(t0))
					} else {
						failed.Add(1)
						mu.Lock()
						rep.Errors[cause]++
						mu.Unlock()
					}
				}
				if o.Progress != nil {
					o.Progress(sent.Load(), acked.Load(), failed.Load())
				}
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	rep.Sent, rep.Acked, rep.Failed = sent.Load(), acked.Load(), failed.Load()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rep.Latencies = lat
	return rep
}

// post sends one beacon as the tracker's sendBeacon does and returns "" on a 2xx, or the
// cause of the failure.
func post(ctx context.Context, c *http.Client, endpoint string, body []byte, v Visit) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("User-Agent", v.UserAgent)
	req.Header.Set("X-Forwarded-For", v.IP)
	resp, err := c.Do(req)
	if err != nil {
		return "connection error"
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return ""
	}
	return fmt.Sprintf("HTTP %d", resp.StatusCode)
}

func retryable(cause string) bool {
	return cause == "connection error" || cause == "HTTP 503" || cause == "HTTP 429"
}
