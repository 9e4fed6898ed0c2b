package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/internal/testkit"
)

// offlineBrowser creates a session on c, connects it with a persistent
// session, subscribes to its channel and goes away.
func offlineBrowser(t *testing.T, c *child) session {
	t.Helper()
	g := &testGateway{base: c.base}
	s := g.newSession(t)
	mc := subscribedBrowser(t, s)
	if err := mc.c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	return s
}

func wsOf(base string) string { return "ws" + base[len("http"):] + "/mqtt" }

// receiveIDs collects the ids of the events mc receives: at least want of
// them (waiting up to 10 s), then any more that come within 200 ms.
func receiveIDs(mc *mqttClient, want int) []string {
	var ids []string
	limit := time.After(10 * time.Second)
	for {
		quiet := time.After(200 * time.Millisecond)
		if len(ids) < want {
			quiet = limit
		}
		select {
		case p := <-mc.msgs:
			var e struct{ ID string }
			_ = json.Unmarshal(p.Payload, &e)
			ids = append(ids, e.ID)
		case <-quiet:
			return ids
		}
	}
}

// An event answered 202 is on disk: the process killed with SIGKILL right
// after the last 202 loses none of them, and the browser gets them all, in
// order, when it comes back — the job's retained final event included.
func TestAcknowledgedEventsSurviveSIGKILL(t *testing.T) {
	for run := range 20 {
		killAfterAcks(t, fmt.Sprintf("http%d", run), func(c *child, s session, id string, body map[string]any) {
			if resp, out := postJSON(t, c.base+"/v1/events", testAPIKey, body); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST event %s: %d %s", id, resp.StatusCode, out)
			}
		})
	}
}

// The same for a service publishing QoS 1 over MQTT: a PUBACK means stored.
func TestPubackedEventsSurviveSIGKILL(t *testing.T) {
	for run := range 5 {
		var svc *mqttClient
		killAfterAcks(t, fmt.Sprintf("mqtt%d", run), func(c *child, s session, id string, body map[string]any) {
			if svc == nil {
				var err error
				svc, _, err = dialMQTT(t, wsOf(c.base), &paho.Connect{ClientID: "svc-events", Username: "demo", UsernameFlag: true,
					Password: []byte(testAPIKey), PasswordFlag: true, KeepAlive: 60, CleanStart: true})
				if err != nil {
					t.Fatal(err)
				}
			}
			body["app"], body["time"] = "demo", time.Now().UTC()
			payload, _ := json.Marshal(body)
			name := "apps/demo/channels/" + s.Channel + "/jobs/job1"
			pr, err := svc.c.Publish(context.Background(), &paho.Publish{Topic: name, QoS: 1, Retain: body["type"] == "job.completed", Payload: payload})
			if err != nil || pr.ReasonCode != 0 {
				t.Fatalf("publish %s: %v %+v", id, err, pr)
			}
		})
	}
}

// The same for a service that sends all of them at once over MQTT 3.1.1
// and reads the PUBACKs afterwards (the broker reads the next PUBLISH while
// the last one is being stored, and holds each PUBACK until its message is
// on disk): the kill comes right after the last PUBACK.
func TestPipelinedPubacksSurviveSIGKILL(t *testing.T) {
	for run := range 5 {
		var burst [][]byte
		killAfterAcks(t, fmt.Sprintf("pipelined%d", run), func(c *child, s session, id string, body map[string]any) {
			body["app"], body["time"] = "demo", time.Now().UTC()
			payload, _ := json.Marshal(body)
			burst = append(burst, payload)
			if body["type"] == "job.completed" {
				publishPipelined(t, c.mqtt, "apps/demo/channels/"+s.Channel+"/jobs/job1", burst)
			}
		})
	}
}

// publishPipelined connects to addr as a 3.1.1 service of the demo app,
// writes one QoS 1 PUBLISH per payload in one go (the last one retained)
// and then reads a PUBACK for each, in order.
func publishPipelined(t *testing.T, addr, name string, payloads [][]byte) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	str := func(b []byte, s string) []byte { return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...) }
	pkt := func(h byte, body []byte) []byte {
		b := []byte{h}
		for n := len(body); ; n >>= 7 {
			if n < 0x80 {
				b = append(b, byte(n))
				break
			}
			b = append(b, byte(n&0x7f|0x80))
		}
		return append(b, body...)
	}
	connect := str(nil, "MQTT")
	connect = append(connect, 4, 0xC2, 0, 60) // 3.1.1, user+password, clean; keep-alive 60 s
	connect = str(str(str(connect, "svc-pipelined"), "demo"), testAPIKey)
	out := pkt(0x10, connect)
	for i, p := range payloads {
		h := byte(0x32)
		if i == len(payloads)-1 {
			h |= 1
		}
		out = append(out, pkt(h, append(binary.BigEndian.AppendUint16(str(nil, name), uint16(i+1)), p...))...)
	}
	if _, err := nc.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil || head[0] != 0x20 || head[3] != 0 {
		t.Fatalf("CONNACK %x: %v", head, err)
	}
	for i := range payloads {
		if _, err := io.ReadFull(r, head); err != nil {
			t.Fatalf("PUBACK %d: %v", i+1, err)
		}
		if head[0] != 0x40 || binary.BigEndian.Uint16(head[2:]) != uint16(i+1) {
			t.Fatalf("got %x, want PUBACK %d", head, i+1)
		}
	}
}

// killAfterAcks has publish send 20 events of one job to an offline
// browser, each acknowledged, kills the gateway with SIGKILL at once,
// restarts it and checks that the browser gets all of them in order and
// that the final one is retained.
func killAfterAcks(t *testing.T, name string, publish func(c *child, s session, id string, body map[string]any)) {
	t.Helper()
	const events = 20
	opts := childOpts{dataDir: t.TempDir(), localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t),
		env: map[string]string{"HERALD_ROLES": "broker,web"}}
	c := startChild(t, name, opts)
	s := offlineBrowser(t, c)
	var want []string
	for i := range events {
		typ := "x.step"
		if i == events-1 {
			typ = "job.completed"
		}
		id := fmt.Sprintf("evt_%s_%d", name, i)
		publish(c, s, id, map[string]any{"v": 1, "type": typ, "id": id, "channel": s.Channel, "jobId": "job1", "seq": i + 1})
		want = append(want, id)
	}
	c.kill(syscall.SIGKILL)

	c2 := startChild(t, name+"-restarted", opts)
	defer c2.kill(syscall.SIGTERM)
	mc, ca, err := dialMQTT(t, wsOf(c2.base), browserConnect(s, false))
	if err != nil {
		t.Fatalf("%s: reconnect: %v", name, err)
	}
	if !ca.SessionPresent {
		t.Fatalf("%s: session lost", name)
	}
	if got := receiveIDs(mc, len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: after SIGKILL the browser got %d events %v, want %d in order %v", name, len(got), got, len(want), want)
	}
	// The final event is retained for a browser that subscribes later.
	fresh, _, err := dialMQTT(t, wsOf(c2.base), browserConnect(s, true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if got := receiveIDs(fresh, 1); len(got) != 1 || got[0] != want[events-1] {
		t.Fatalf("%s: retained after SIGKILL: %v, want [%s]", name, got, want[events-1])
	}
}

// With its data directory full the gateway answers 503 with Retry-After,
// /readyz says why, the storage metric drops, and all of it recovers by
// itself once space is back; every event answered 202 survives SIGKILL.
func TestDiskFullRefusesAndRecovers(t *testing.T) {
	dir := testkit.SmallDisk(t, 16<<20)
	opts := childOpts{dataDir: dir, localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t),
		env: map[string]string{"HERALD_ROLES": "broker,web"}}
	c := startChild(t, "full", opts)
	s := offlineBrowser(t, c)
	var accepted []string
	post := func(i int) (*http.Response, []byte) {
		id := fmt.Sprintf("evt_%d", i)
		resp, body := postJSON(t, c.base+"/v1/events", testAPIKey, map[string]any{
			"v": 1, "type": "x.step", "id": id, "channel": s.Channel,
			"outputs": []map[string]string{{"name": "pad", "key": strings.Repeat("k", 8<<10)}}})
		if resp.StatusCode == http.StatusAccepted {
			accepted = append(accepted, id)
		}
		return resp, body
	}
	for i := range 3 {
		if resp, body := post(i); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST before the disk fills: %d %s", resp.StatusCode, body)
		}
	}

	free := testkit.FillDisk(t, dir)
	i := 3
	var resp *http.Response
	var body []byte
	for ; i < 500; i++ {
		if resp, body = post(i); resp.StatusCode != http.StatusAccepted {
			break
		}
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("POST on a full disk: %d Retry-After=%q %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	refusedAtSync := fmt.Sprintf("evt_%d", i)
	if resp, body := post(i + 1); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST while failing: %d %s", resp.StatusCode, body)
	}
	code, ready := get(t, c.base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(ready, "no space left on device") {
		t.Fatalf("/readyz on a full disk: %d %s, want 503 naming the cause", code, ready)
	}
	if _, m := get(t, c.base+"/metrics"); !strings.Contains(m, "herald_broker_storage_ok 0") {
		t.Fatal("herald_broker_storage_ok is not 0 on a full disk")
	}

	free()
	testkit.WaitFor(t, 10*time.Second, "ready again", func() bool {
		code, _ := get(t, c.base+"/readyz")
		return code == http.StatusOK
	})
	if _, m := get(t, c.base+"/metrics"); !strings.Contains(m, "herald_broker_storage_ok 1") {
		t.Fatal("herald_broker_storage_ok is not 1 after recovery")
	}
	for j := i + 2; j < i+5; j++ {
		if resp, body := post(j); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST after recovery: %d %s", resp.StatusCode, body)
		}
	}
	c.kill(syscall.SIGKILL)

	c2 := startChild(t, "full-restarted", opts)
	mc, _, err := dialMQTT(t, wsOf(c2.base), browserConnect(s, false))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.DeleteFunc(receiveIDs(mc, len(accepted)), func(id string) bool { return id == refusedAtSync })
	if fmt.Sprint(got) != fmt.Sprint(accepted) {
		t.Fatalf("after SIGKILL: %v, want every accepted event in order %v", got, accepted)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
