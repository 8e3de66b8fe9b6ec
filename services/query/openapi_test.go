package query

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/glimpse-analytics/glimpse/docs"
	"github.com/glimpse-analytics/glimpse/internal/store/memstore"
)

// The /api/v1/ paths of docs/openapi.json are exactly the paths this service answers, with
// the methods it answers them with.
func TestOpenAPIDocumentsTheQueryRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	svc := newTestService(t, memstore.New())
	var documented []string
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/api/v1/") {
			continue
		}
		documented = append(documented, path)
		for method := range item.Operations() {
			w := svc.do(httptest.NewRequest(method, path, nil))
			if w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed {
				t.Errorf("documented %s %s is answered %d: %s", method, path, w.Code, w.Body)
			}
		}
		for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if item.GetOperation(method) != nil {
				continue
			}
			if w := svc.do(httptest.NewRequest(method, path, nil)); w.Code != http.StatusMethodNotAllowed {
				t.Errorf("undocumented %s %s is answered %d, not 405", method, path, w.Code)
			}
		}
	}
	slices.Sort(documented)
	served := []string{ExportPath, QueryPath, RealtimePath}
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("docs/openapi.json documents %v under /api/v1/; the query service serves %v", documented, served)
	}
	if w := svc.do(httptest.NewRequest(http.MethodGet, "/api/v1/undocumented", nil)); w.Code != http.StatusNotFound {
		t.Errorf("an undocumented path is answered %d", w.Code)
	}
}
