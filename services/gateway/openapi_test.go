package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/glimpse-analytics/glimpse/docs"
	"github.com/glimpse-analytics/glimpse/services/registry"
)

// undocumentedRoutes are gateway routes that are not part of the API: the dashboard's
// static files.
var undocumentedRoutes = []string{"/*"}

// queryAPIPrefix is the gateway route that forwards every /api/v1/ path to the query
// service; services/query's tests check the documented /api/v1/ paths against its handler.
const queryAPIPrefix = "/api/v1/*"

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("docs/openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("docs/openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// Every route the gateway serves is documented with its methods, and every documented path
// and method is served.
func TestOpenAPIDocumentsEveryGatewayRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	g, err := New(quietConfig(), Deps{
		Registry:  registry.NewInProc(),
		Tracker:   fstest.MapFS{"glimpse.js": {Data: []byte("/**/")}},
		Dashboard: fstest.MapFS{"index.html": {Data: []byte("<h1></h1>")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string][]string{} // route → methods
	err = chi.Walk(g.mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served[route] = append(served[route], method)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[path] = append(documented[path], method)
		}
	}

	for route, methods := range served {
		if slices.Contains(undocumentedRoutes, route) {
			continue
		}
		if route == queryAPIPrefix {
			n := 0
			for path := range documented {
				if strings.HasPrefix(path, strings.TrimSuffix(queryAPIPrefix, "*")) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("the gateway forwards %s to the query service, but no /api/v1/ path is documented", route)
			}
			continue
		}
		for _, m := range methods {
			if !slices.Contains(documented[route], m) {
				t.Errorf("the gateway serves %s %s, which docs/openapi.json does not document", m, route)
			}
		}
	}
	for path, methods := range documented {
		want := path
		if strings.HasPrefix(path, strings.TrimSuffix(queryAPIPrefix, "*")) {
			want = queryAPIPrefix
		}
		for _, m := range methods {
			if !slices.Contains(served[want], m) && !(want == queryAPIPrefix && len(served[want]) > 0) {
				t.Errorf("docs/openapi.json documents %s %s, which the gateway does not serve", m, path)
			}
		}
	}
}
