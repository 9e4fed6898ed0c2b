package web

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/heraldgw/herald/tenant"
)

// openAPIOperations lists "METHOD /path" for every operation the document
// describes, read with libopenapi.
func openAPIOperations(t *testing.T) []string {
	t.Helper()
	doc, err := libopenapi.NewDocument(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	var out []string
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	return out
}

// The document is valid OpenAPI 3.1 by the validator's own meta-schema.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := libopenapi.NewDocument(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.GetVersion(); !strings.HasPrefix(got, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", got)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s (line %d)", se.Reason, se.KeywordLocation, se.Line)
			}
		}
	}
}

// Every /v1 route the server registers is in the document, and the document
// describes no /v1 route that does not exist. A new route fails here until
// web/openapi.yaml describes it.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	reg, err := tenant.NewRegistry([]tenant.App{{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	routes := s.APIRoutes()
	if len(routes) == 0 {
		t.Fatal("no /v1 routes registered")
	}
	ops := openAPIOperations(t)
	for _, r := range routes {
		method, path, ok := strings.Cut(r, " ")
		if !ok || strings.HasPrefix(r, "/") {
			t.Errorf("route %q has no method; register /v1 routes as \"METHOD /v1/…\"", r)
			continue
		}
		// "{name...}" in a ServeMux pattern is "{name}" in OpenAPI.
		want := method + " " + strings.ReplaceAll(path, "...}", "}")
		if !slices.Contains(ops, want) {
			t.Errorf("route %q is not described in web/openapi.yaml (want operation %q)", r, want)
		}
	}
	for _, op := range ops {
		if !strings.Contains(op, " /v1/") {
			continue
		}
		found := slices.ContainsFunc(routes, func(r string) bool { return strings.ReplaceAll(r, "...}", "}") == op })
		if !found {
			t.Errorf("web/openapi.yaml describes %q, which the server does not register", op)
		}
	}
}

// GET /v1/openapi.json serves the repository's document as JSON.
func TestOpenAPIServed(t *testing.T) {
	ts := newTestServer(t)
	resp, body := do(t, "GET", ts.URL+"/v1/openapi.json", nil, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Paths["/v1/sessions"] == nil {
		t.Fatalf("served document: openapi %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
}
