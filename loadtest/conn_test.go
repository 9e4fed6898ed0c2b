package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A server that upgrades but never answers CONNECT fails the connect with
// a timeout at the deadline, and the reason says so.
func TestConnectTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for { // read and never answer
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := dialMQTT(context.Background(), http.DefaultClient, "ws"+strings.TrimPrefix(srv.URL, "http"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.connect(time.Now().Add(200*time.Millisecond), "c1", "", "", 60)
	if got := reasonOf(err); got != "connack_timeout" {
		t.Fatalf("reason %q (%v), want connack_timeout", got, err)
	}
}
