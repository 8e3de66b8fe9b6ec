package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// QueryResult is the query API's answer.
type QueryResult struct {
	Results []struct {
		Dimensions []any     `json:"dimensions"`
		Metrics    []float64 `json:"metrics"`
	} `json:"results"`
	Meta  map[string]any `json:"meta"`
	Error string         `json:"error"`
}

// Breakdown turns a one-dimension answer into value → first metric.
func (r QueryResult) Breakdown() map[string]int {
	out := map[string]int{}
	for _, row := range r.Results {
		out[DimString(row.Dimensions[0])] = int(row.Metrics[0])
	}
	return out
}

// DimString renders a dimension value of an answer.
func DimString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// maxAnswer bounds how much of a query answer a test reads: far above any answer the
// suites ask for, so hitting it means the service misbehaves.
const maxAnswer = 64 << 20

// API is a query API endpoint (a query service, a gateway or `glimpse all`) and the key to
// call it with.
type API struct {
	URL string // base URL, e.g. http://127.0.0.1:8080
	Key string // sent as Authorization: Bearer; "" sends none
}

// Raw posts q to /api/v1/query and returns the status and body.
func (a API) Raw(q map[string]any) (int, []byte, error) {
	body, err := json.Marshal(q)
	if err != nil {
		return 0, nil, fmt.Errorf("encode query: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, a.URL+"/api/v1/query", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Key != "" {
		req.Header.Set("Authorization", "Bearer "+a.Key)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err == nil && len(raw) > maxAnswer {
		err = fmt.Errorf("answer is larger than %d MiB", maxAnswer>>20)
	}
	return resp.StatusCode, raw, err
}

// Query posts q and fails the test unless the answer is a 200 with JSON.
func (a API) Query(t testing.TB, q map[string]any) QueryResult {
	t.Helper()
	code, raw, err := a.Raw(q)
	if err != nil {
		t.Fatalf("query %v: %v", q, err)
	}
	var out QueryResult
	if jerr := json.Unmarshal(raw, &out); jerr != nil {
		t.Fatalf("query %v: HTTP %d, answer is not JSON (%v): %s", q, code, jerr, raw)
	}
	if code != http.StatusOK {
		t.Fatalf("query %v: HTTP %d: %s", q, code, raw)
	}
	return out
}

// TodayRange is a date range covering the UTC day of the run and the day before (a run
// that starts just before midnight stays covered).
func TodayRange() []string {
	now := time.Now().UTC()
	return []string{now.AddDate(0, 0, -1).Format("2006-01-02"), now.Format("2006-01-02")}
}

// SkipIfDayChanged skips a test whose traffic straddled midnight UTC: the visitor-id salt
// rotates then, so one visitor legitimately becomes two and exact counts do not hold.
func SkipIfDayChanged(t testing.TB, started time.Time) {
	if time.Now().UTC().Format("2006-01-02") != started.UTC().Format("2006-01-02") {
		t.Skip("the run crossed midnight UTC (visitor ids rotate daily); rerun")
	}
}
