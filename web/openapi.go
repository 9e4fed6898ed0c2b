package web

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"gopkg.in/yaml.v3"
)

// OpenAPI is the OpenAPI 3.1 description of every /v1 route, as kept in the
// repository (web/openapi.yaml). GET /v1/openapi.json serves it as JSON.
//
//go:embed openapi.yaml
var OpenAPI []byte

// openAPIJSON converts the embedded YAML document to JSON once.
func openAPIJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("web: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(jsonable(doc))
	if err != nil {
		return nil, fmt.Errorf("web: openapi.yaml as JSON: %w", err)
	}
	return b, nil
}

// jsonable turns YAML mappings with non-string keys (an unquoted status code
// such as 201) into JSON objects.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	default:
		return v
	}
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := w.Write(s.openapi)
	return err
}

// routeMux is the server's ServeMux that remembers every pattern registered
// on it, so a test can hold the OpenAPI document to the routes that exist.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// APIRoutes lists the registered /v1 routes as "METHOD /v1/path" (path
// wildcards as in the pattern), leaving out the catch-all that answers
// not_found.
func (s *Server) APIRoutes() []string {
	var out []string
	for _, p := range s.mux.patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "", p
		}
		if !strings.HasPrefix(path, "/v1/") || path == "/v1/" {
			continue
		}
		out = append(out, strings.TrimSpace(method+" "+path))
	}
	return out
}
