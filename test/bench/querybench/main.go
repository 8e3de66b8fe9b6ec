// Command querybench measures the dashboard's heaviest everyday request against a running
// Glimpse: a 30-day daily time series and the top pages of the same range, sent one after the
// other as the dashboard does. With --wait-pageviews it first waits until the processor has
// caught up with a bulk load and reports how long that took.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"time"
)

func main() {
	target := flag.String("target", "http://localhost:8080", "base URL of glimpse")
	site := flag.String("site", "bench.example", "site id to query")
	n := flag.Int("n", 200, "measured repetitions")
	warmup := flag.Int("warmup", 10, "unmeasured repetitions first")
	waitPageviews := flag.Int64("wait-pageviews", 0, "first wait until the 30-day page views reach this number")
	days := flag.Int("days", 30, "query the last this many whole UTC days, ending yesterday (as bulkload fills them)")
	flag.Parse()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	dateRange := []string{today.AddDate(0, 0, -*days).Format("2006-01-02"), today.AddDate(0, 0, -1).Format("2006-01-02")}

	series := map[string]any{"site_id": *site, "metrics": []string{"visitors", "pageviews", "visits", "bounce_rate"}, "dimensions": []string{"time:day"}, "date_range": dateRange}
	pages := map[string]any{"site_id": *site, "metrics": []string{"visitors", "pageviews"}, "dimensions": []string{"event:page"}, "date_range": dateRange, "limit": 10}
	totals := map[string]any{"site_id": *site, "metrics": []string{"pageviews", "visits", "visitors"}, "date_range": dateRange}

	if *waitPageviews > 0 {
		t0 := time.Now()
		for {
			var r struct {
				Results []struct{ Metrics []float64 } `json:"results"`
			}
			if err := post(*target, totals, &r); err == nil && len(r.Results) > 0 && int64(r.Results[0].Metrics[0]) >= *waitPageviews {
				fmt.Printf("caught up: %v page views after %s\n", r.Results[0].Metrics, time.Since(t0).Round(time.Second))
				break
			}
			time.Sleep(time.Second)
		}
	}
	var tSeries, tPages, tBoth []time.Duration
	for i := 0; i < *warmup+*n; i++ {
		t0 := time.Now()
		if err := post(*target, series, nil); err != nil {
			log.Fatal(err)
		}
		t1 := time.Now()
		if err := post(*target, pages, nil); err != nil {
			log.Fatal(err)
		}
		t2 := time.Now()
		if i >= *warmup {
			tSeries = append(tSeries, t1.Sub(t0))
			tPages = append(tPages, t2.Sub(t1))
			tBoth = append(tBoth, t2.Sub(t0))
		}
	}
	report("30-day time series", tSeries)
	report("30-day top pages", tPages)
	report("both (one dashboard load)", tBoth)
}

func post(target string, q map[string]any, out any) error {
	body, _ := json.Marshal(q)
	resp, err := http.Post(target+"/api/v1/query", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func report(name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) time.Duration { return d[int(float64(len(d)-1)*p/100)].Round(10 * time.Microsecond) }
	fmt.Printf("%-28s n=%d  p50 %8s  p99 %8s  max %8s\n", name, len(d), pct(50), pct(99), pct(100))
}
