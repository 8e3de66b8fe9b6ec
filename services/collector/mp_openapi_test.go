package collector

import (
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/glimpse-analytics/glimpse/docs"
)

// The collector's routes are documented in docs/openapi.json with the methods the collector
// answers, and a path it does not serve gets 404.
func TestOpenAPIDocumentsTheCollectorRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	for _, path := range []string{Path, MPPath} {
		item := doc.Paths.Find(path)
		if item == nil || item.Post == nil {
			t.Errorf("docs/openapi.json does not document POST %s", path)
			continue
		}
		for method := range item.Operations() {
			if w := h.do(req{method: method, path: path, body: "{}"}); w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed {
				t.Errorf("documented %s %s is answered %d", method, path, w.Code)
			}
		}
	}
	for path := range doc.Paths.Map() {
		if path == Path || path == MPPath || !strings.HasPrefix(path, "/api/event") && !strings.HasPrefix(path, "/mp/") {
			continue
		}
		t.Errorf("docs/openapi.json documents %s, which the collector does not serve", path)
	}
	if w := h.do(req{path: "/mp/debug/collect", body: "{}"}); w.Code != http.StatusNotFound {
		t.Errorf("an undocumented collector path is answered %d", w.Code)
	}
}
