package localaws

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A wildcard bind must still hand out a URL that clients (and browsers, in
// presigned POSTs) can open: never http://[::]:port or http://0.0.0.0:port.
func TestWildcardBindURLIsReachable(t *testing.T) {
	cases := []struct{ addr, wantPrefix string }{
		{"0.0.0.0:0", "http://127.0.0.1:"},
		{":0", "http://127.0.0.1:"},
		{"127.0.0.1:0", "http://127.0.0.1:"},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			srv, err := New(Config{Addr: tc.addr, DataDir: t.TempDir(), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			got := srv.URL()
			if !strings.HasPrefix(got, tc.wantPrefix) {
				t.Fatalf("URL() = %q, want prefix %q", got, tc.wantPrefix)
			}
			res, err := http.Get(got + "/")
			if err != nil {
				t.Fatalf("GET %s: %v", got, err)
			}
			res.Body.Close()
		})
	}
}
