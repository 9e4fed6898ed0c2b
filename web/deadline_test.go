package web

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/tenant"
)

// TestSlowDripBodyTimesOut: a client that sends its body one byte at a time
// is answered 408 request_timeout once BodyTimeout has passed, and its
// connection is closed, instead of holding it for as long as it drips.
// A client that sends at a normal pace on the same server is unaffected.
func TestSlowDripBodyTimesOut(t *testing.T) {
	reg, err := tenant.NewRegistry([]tenant.App{{ID: "demo", APIKey: "demo-key-0123456789", Secret: strings.Repeat("s", 32), AllowAnonymous: true}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Registry: reg, BodyTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	for _, path := range []string{"/v1/sessions", "/v1/uploads", "/v1/jobs", "/"} {
		t.Run(path, func(t *testing.T) {
			c, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body := `{"app":"demo"}` + strings.Repeat(" ", 100)
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer demo-key-0123456789\r\nContent-Length: %d\r\n\r\n", path, len(body))
			start := time.Now()
			// Drip for up to 5 s (10× the timeout) on a writer goroutine.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; i < len(body); i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if _, err := c.Write([]byte{body[i]}); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if path != "/" && resp.StatusCode != http.StatusRequestTimeout {
					t.Errorf("got %d, want 408", resp.StatusCode)
				}
				// The connection ends with the response.
				_, err = br.ReadByte()
			}
			if took := time.Since(start); err == nil || took > 3*time.Second {
				t.Fatalf("connection still open or held for %v (%v)", took, err)
			}
		})
	}

	// A normal client, same server.
	resp, err := http.Post(ts.URL+"/v1/sessions", "application/json", strings.NewReader(`{"app":"demo"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("normal request: got %d", resp.StatusCode)
	}
}
