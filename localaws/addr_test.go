package localaws

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldgw/herald/internal/testkit"
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
			srv, err := New(Config{Addr: tc.addr, DataDir: t.TempDir(), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Listen(); err != nil {
				t.Fatal(err)
			}
			testkit.Go(t, srv.Run)
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
