package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/glimpse-analytics/glimpse/test/testkit"
)

func init() {
	// Bodies the validator has no decoder for by default: checked as opaque files.
	openapi3filter.RegisterBodyDecoder("application/zip", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.FileBodyDecoder)
}

// exampleRequest is one request built from the examples of an operation.
type exampleRequest struct {
	name   string // "POST /api/v1/query (topPages)"
	method string
	url    string
	ct     string
	body   []byte
}

// TestOpenAPIExamplesAgainstGlimpseAll loads the OpenAPI document that `glimpse all`
// serves, checks that it is valid and that every example in it fits its schema, then sends
// every example request of every operation to the running glimpse and validates each
// request and each answer against the document.
func TestOpenAPIExamplesAgainstGlimpseAll(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	mustCLI(t, dataDir, "sites", "add", "example.com")
	secret := strings.TrimSpace(mustCLI(t, dataDir, "sites", "mp-secret", "create", "example.com", "--quiet"))
	in := start(t, testkit.FreeAddr(t), dataDir)
	if in.Key == "" {
		t.Fatal("no admin key in the output of glimpse all")
	}

	resp, err := http.Get(in.BaseURL + "/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/openapi.json: HTTP %d", resp.StatusCode)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("the served document does not load: %v", err)
	}
	if err := doc.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the served document is not valid: %v", err)
	}
	checkExamplesFitSchemas(t, doc)

	doc.Servers = openapi3.Servers{{URL: in.BaseURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, path := range sortedPaths(doc) {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			reqs := buildExampleRequests(t, in.BaseURL, path, method, item, op, secret)
			for _, er := range reqs {
				sent++
				checkExample(t, ctx, router, in, er, op.Security != nil && len(*op.Security) > 0)
			}
		}
	}
	if sent < 12 {
		t.Errorf("only %d example requests were sent; the document lost its examples", sent)
	}
}

func sortedPaths(doc *openapi3.T) []string {
	var out []string
	for p := range doc.Paths.Map() {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// checkExamplesFitSchemas checks every example of a body or parameter against its schema,
// independently of the validator's own example checks.
func checkExamplesFitSchemas(t *testing.T, doc *openapi3.T) {
	t.Helper()
	visit := func(where string, schema *openapi3.SchemaRef, value any) {
		if schema == nil || schema.Value == nil {
			t.Errorf("%s: example without a schema", where)
			return
		}
		// round-trip through JSON so numbers are float64 as the validator expects
		b, _ := json.Marshal(value)
		var v any
		_ = json.Unmarshal(b, &v)
		if s, ok := value.(string); ok && schema.Value.Type.Is("string") {
			v = s
		}
		if err := schema.Value.VisitJSON(v); err != nil {
			t.Errorf("%s: the example does not fit its schema: %v", where, err)
		}
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range append(item.Parameters, op.Parameters...) {
				if p.Value.Example != nil {
					n++
					visit(method+" "+path+" parameter "+p.Value.Name, p.Value.Schema, p.Value.Example)
				}
			}
			if op.RequestBody != nil {
				for ct, mt := range op.RequestBody.Value.Content {
					for name, ex := range mt.Examples {
						n++
						visit(method+" "+path+" request "+ct+" "+name, mt.Schema, ex.Value.Value)
					}
				}
			}
			for code, r := range op.Responses.Map() {
				for ct, mt := range r.Value.Content {
					if mt.Example != nil {
						n++
						visit(method+" "+path+" "+code+" "+ct, mt.Schema, mt.Example)
					}
				}
			}
		}
	}
	for name, s := range doc.Components.Schemas {
		if s.Value.Example != nil {
			n++
			visit("schema "+name, s, s.Value.Example)
		}
	}
	if n < 15 {
		t.Errorf("only %d examples in the document", n)
	}
}

// buildExampleRequests makes one request per request-body example of an operation (or one
// without a body), with every parameter that has an example. api_secret is replaced by a
// real secret of the example site.
func buildExampleRequests(t *testing.T, base, path, method string, item *openapi3.PathItem, op *openapi3.Operation, secret string) []exampleRequest {
	t.Helper()
	q := url.Values{}
	for _, p := range append(item.Parameters, op.Parameters...) {
		pv := p.Value
		if pv.In != "query" || pv.Example == nil {
			if pv.Required && pv.In == "query" {
				t.Errorf("%s %s: required parameter %s has no example", method, path, pv.Name)
			}
			continue
		}
		v, ok := pv.Example.(string)
		if !ok {
			b, _ := json.Marshal(pv.Example)
			v = string(b)
		}
		if pv.Name == "api_secret" {
			v = secret
		}
		q.Set(pv.Name, v)
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	name := method + " " + path
	if op.RequestBody == nil {
		return []exampleRequest{{name: name, method: method, url: u}}
	}
	var out []exampleRequest
	for ct, mt := range op.RequestBody.Value.Content {
		var names []string
		for n := range mt.Examples {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			body, err := json.Marshal(mt.Examples[n].Value.Value)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, exampleRequest{name: name + " (" + n + ")", method: method, url: u, ct: ct, body: body})
		}
	}
	if len(out) == 0 && op.RequestBody.Value.Required {
		t.Errorf("%s: the request body is required but has no example", name)
	}
	return out
}

// checkExample sends one example request and validates it and its answer against the
// document; the answer must be a success.
func checkExample(t *testing.T, ctx context.Context, router routers.Router, in *instance, er exampleRequest, secured bool) {
	t.Helper()
	newReq := func() *http.Request {
		req, err := http.NewRequestWithContext(ctx, er.method, er.url, bytes.NewReader(er.body))
		if err != nil {
			t.Fatal(err)
		}
		if er.ct != "" {
			req.Header.Set("Content-Type", er.ct)
		}
		if secured {
			req.Header.Set("Authorization", "Bearer "+in.Key)
		}
		return req
	}
	vreq := newReq()
	route, pathParams, err := router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: the document's router does not find it: %v", er.name, err)
		return
	}
	// IncludeResponseStatus: an answer whose status the document does not list fails.
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	input := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: pathParams, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, input); err != nil {
		t.Errorf("%s: the example request does not fit the document: %v", er.name, err)
	}

	resp, err := http.DefaultClient.Do(newReq())
	if err != nil {
		t.Fatalf("%s: %v", er.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.Errorf("%s: HTTP %d: %.300s", er.name, resp.StatusCode, body)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: the answer (HTTP %d, %s) does not fit the document: %v\n%.300s", er.name, resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
	}
}
