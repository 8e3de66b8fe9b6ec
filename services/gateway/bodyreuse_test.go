package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Bodies read into reused buffers reach in-process upstreams whole and unmixed, however
// many requests run at once and whatever their sizes.
func TestInProcessBodiesSurviveBufferReuse(t *testing.T) {
	collector := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil || string(b) != r.Header.Get("X-Want") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	h := inProcessGateway(t, collector)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				pad := strings.Repeat(string(rune('a'+w)), (i*37)%5000)
				body := fmt.Sprintf(`{"n":"pageview","u":"https://example.com/%d/%d","d":"example.com","p":{"pad":%q}}`, w, i, pad)
				req := httptest.NewRequest(http.MethodPost, "/api/event", strings.NewReader(body))
				req.Header.Set("Content-Type", "text/plain")
				req.Header.Set("X-Want", body)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusAccepted {
					t.Errorf("request %d/%d: status %d", w, i, rec.Code)
					return
				}
			}
		})
	}
	wg.Wait()
}
