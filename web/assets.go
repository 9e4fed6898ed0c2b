package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// static holds the demo page. dist/ is produced by `npm run build` (esbuild);
// without it the page still loads and says the bundle is missing, so
// `go build` never depends on Node.
//
//go:embed static
var static embed.FS

func (s *Server) staticHandler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data: http: https:; media-src 'self' blob: http: https:; connect-src 'self' ws: wss: http: https:; style-src 'self' 'unsafe-inline'")
		if r.URL.Path == "/" || r.URL.Path == "/index.html" {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
