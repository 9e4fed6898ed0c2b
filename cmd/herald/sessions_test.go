package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// deleteSession sends DELETE /v1/sessions/{channel} with key.
func deleteSession(t *testing.T, base, channel, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+"/v1/sessions/"+channel, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// refreshSession sends POST /v1/sessions/refresh with token; it returns the
// status, the error code (if any) and the session (if 200).
func refreshSession(t *testing.T, base, token string) (int, string, session) {
	t.Helper()
	resp, body := postJSON(t, base+"/v1/sessions/refresh", token, nil)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	var s session
	_ = json.Unmarshal(body, &e)
	_ = json.Unmarshal(body, &s)
	return resp.StatusCode, e.Error.Code, s
}

// refusedWith connects s's token to wsURL and returns the CONNACK reason
// of the refusal (or fails if it connects).
func refusedWith(t *testing.T, wsURL string, s session) byte {
	t.Helper()
	_, ca, err := dialMQTT(t, wsURL, browserConnect(s, false))
	if err == nil || ca == nil {
		t.Fatalf("token of a revoked channel connected (%v)", err)
	}
	return ca.ReasonCode
}

// TestRevokeSurvivesRestart: DELETE /v1/sessions/{channel} closes the live
// connection within a second (DISCONNECT 0x98), and the channel's token is
// refused at CONNECT (0x8A) and by refresh (401 token_revoked) — also after
// the gateway restarts on the same data dir.
func TestRevokeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	s := g.newSession(t)
	mc, _, err := dialMQTT(t, s.MQTT.URL, browserConnect(s, false))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := deleteSession(t, g.base, s.Channel, "wrong-key-0123456789"); code != http.StatusUnauthorized {
		t.Fatalf("revoke with a wrong key: %d %s", code, body)
	}
	start := time.Now()
	if code, body := deleteSession(t, g.base, s.Channel, testAPIKey); code != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", code, body)
	}
	select {
	case code := <-mc.disconnects:
		took := time.Since(start)
		t.Logf("live connection closed %v after DELETE", took)
		if code != 0x98 || took > time.Second {
			t.Fatalf("DISCONNECT %#x after %v, want 0x98 within 1s", code, took)
		}
	case <-time.After(time.Second):
		t.Fatal("no DISCONNECT within 1s of the revocation")
	}
	check := func(base string) {
		t.Helper()
		if code := refusedWith(t, "ws"+strings.TrimPrefix(base, "http")+"/mqtt", s); code != 0x8A {
			t.Errorf("CONNACK %#x, want 0x8A", code)
		}
		if code, ecode, _ := refreshSession(t, base, s.Token); code != 401 || ecode != "token_revoked" {
			t.Errorf("refresh: %d %s, want 401 token_revoked", code, ecode)
		}
	}
	check(g.base)
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	g2 := startGateway(t, dir)
	check(g2.base)
	// Other sessions are untouched.
	other := g2.newSession(t)
	if code, _, n := refreshSession(t, g2.base, other.Token); code != 200 || n.Channel != other.Channel {
		t.Errorf("refresh of another session: %d %+v", code, n)
	}
}

// TestRevokeReachesReplicas: with two federated replicas (real Mosquitto
// upstream), a revocation made on one closes the browser's connection on
// the other within a second and is refused there; a third replica started
// afterwards, with an empty data dir, refuses the token from its first
// request (it learns the retained revocation record from the upstream
// broker before it reports ready).
func TestRevokeReachesReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	m := testkit.StartMosquitto(t)
	cfgFile := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cfgFile, []byte(externalConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	replica := func(i int) *child {
		return startChild(t, fmt.Sprint("replica", i), childOpts{
			dataDir: t.TempDir(), localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t),
			env: map[string]string{"HERALD_CONFIG": cfgFile, "HERALD_ROLES": "broker,web",
				"HERALD_FEDERATION_URL": "mqtt://" + m.PlainAddr},
		})
	}
	r1, r2 := replica(1), replica(2)
	wsOf := func(c *child) string { return "ws" + strings.TrimPrefix(c.base, "http") + "/mqtt" }

	resp, body := postJSON(t, r2.base+"/v1/sessions", "", map[string]string{"app": "demo"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: %d %s", resp.StatusCode, body)
	}
	var s session
	_ = json.Unmarshal(body, &s)
	mc, _, err := dialMQTT(t, wsOf(r2), browserConnect(s, false))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code, body := deleteSession(t, r1.base, s.Channel, testAPIKey); code != http.StatusNoContent {
		t.Fatalf("revoke on replica 1: %d %s", code, body)
	}
	select {
	case code := <-mc.disconnects:
		took := time.Since(start)
		t.Logf("connection on replica 2 closed %v after DELETE on replica 1", took)
		if code != 0x98 {
			t.Fatalf("DISCONNECT %#x, want 0x98", code)
		}
	case <-time.After(time.Second):
		t.Fatal("replica 2 kept the connection for more than 1s after the revocation")
	}
	if code := refusedWith(t, wsOf(r2), s); code != 0x8A {
		t.Errorf("replica 2 CONNACK %#x, want 0x8A", code)
	}

	// Ready means every revocation in force has arrived from upstream: no
	// moment where the fresh replica would take the token.
	r3 := replica(3)
	if code, ecode, _ := refreshSession(t, r3.base, s.Token); code != 401 || ecode != "token_revoked" {
		t.Fatalf("replica 3 refresh: %d %s, want 401 token_revoked", code, ecode)
	}
	if code := refusedWith(t, wsOf(r3), s); code != 0x8A {
		t.Errorf("replica 3 CONNACK %#x, want 0x8A", code)
	}
}
