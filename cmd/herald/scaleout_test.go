package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// scaleoutConfig is the herald.yaml of every process in the scale-out
// test: one app shared by all (a token minted by one replica is checked by
// another, a processor publishes for the same app), no per-IP connect limit
// (every test browser comes from 127.0.0.1, as behind a proxy), and one
// small output per image so hundreds of jobs fit on two cores.
const scaleoutConfig = `apps:
  - id: demo
    apiKey: ` + testAPIKey + `
    secret: 0123456789abcdef0123456789abcdef
    origins: ["*"]
    allowAnonymous: true
    eventsPerSecond: 100000
    maxJobsInFlight: -1
    uploadsPerSecond: -1
broker:
  connectRatePerIP: -1
processor:
  convert:
    pipelines:
      - name: thumbs
        keyPrefix: uploads/
        mime: ["image/*"]
        outputs:
          - {name: thumb-64, converter: image, format: webp, size: 64}
`

// scaleoutBrowser is one browser of the scale-out test: a session on its
// home replica, a paho MQTT 5 client on that replica's /mqtt, one upload.
type scaleoutBrowser struct {
	home  int
	s     session
	c     *paho.Client
	jobID string

	mu     sync.Mutex
	topics map[string]string // event id → topic it came on
	byID   map[string]event.Envelope
	copies int // deliveries, duplicates included
}

func (b *scaleoutBrowser) record(pr paho.PublishReceived) {
	var e event.Envelope
	if err := json.Unmarshal(pr.Packet.Payload, &e); err != nil {
		e = event.Envelope{ID: fmt.Sprintf("unparseable-%d", time.Now().UnixNano()), Type: "unparseable: " + err.Error()}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.copies++
	b.byID[e.ID] = e
	b.topics[e.ID] = pr.Packet.Topic
}

func (b *scaleoutBrowser) events() (map[string]event.Envelope, map[string]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]event.Envelope, len(b.byID))
	tp := make(map[string]string, len(b.topics))
	for k, v := range b.byID {
		m[k] = v
		tp[k] = b.topics[k]
	}
	return m, tp, b.copies
}

func (b *scaleoutBrowser) completed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.byID {
		if e.Final() {
			return true
		}
	}
	return false
}

// connect mints a session on the home replica (with the app's API key, as
// a site's backend would: anonymous minting is rate limited per IP), opens
// MQTT 5 over its /mqtt WebSocket and subscribes to the channel. It runs on
// a worker goroutine, so it returns errors instead of failing the test.
func (b *scaleoutBrowser) connect(t *testing.T, base string) error {
	resp, body, err := postJSONErr(base+"/v1/sessions", testAPIKey, map[string]string{"app": "demo"})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/sessions: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &b.s); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return b.dial(t, b.s.MQTT.URL)
}

// dial opens MQTT 5 over the WebSocket at wsURL with the browser's session
// (clean start) and subscribes to its channel.
func (b *scaleoutBrowser) dial(t *testing.T, wsURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{Subprotocols: []string{"mqtt"}})
	if err != nil {
		return fmt.Errorf("dial %s: %w", wsURL, err)
	}
	// paho writes a packet in several writes and pings concurrently; over a
	// WebSocket those writes must not interleave.
	conn := packets.NewThreadSafeConn(websocket.NetConn(context.Background(), ws, websocket.MessageBinary))
	b.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			b.record(pr)
			return true, nil
		}},
	})
	if _, err := b.c.Connect(ctx, browserConnect(b.s, true)); err != nil {
		conn.Close()
		return fmt.Errorf("connect: %w", err)
	}
	c := b.c
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	sa, err := b.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: b.s.Topic, QoS: 1}}})
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		return fmt.Errorf("subscribe %s: reasons %v, want granted QoS 1", b.s.Topic, sa.Reasons)
	}
	return nil
}

// upload asks the home replica for a presigned POST and sends the file to
// the bucket as a browser form would.
func (b *scaleoutBrowser) upload(base, filename string, data []byte) error {
	resp, body, err := postJSONErr(base+"/v1/uploads", b.s.Token, map[string]any{"filename": filename, "contentType": "image/png", "size": len(data)})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/uploads: %d %s", resp.StatusCode, body)
	}
	var g struct {
		JobID  string            `json:"jobId"`
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		return fmt.Errorf("upload grant: %w", err)
	}
	b.jobID = g.JobID
	r, rb, err := testkit.Upload{URL: g.URL, Fields: g.Fields, Filename: filename, Data: data}.Post()
	if err != nil {
		return fmt.Errorf("POST to bucket: %w", err)
	}
	if r.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST to bucket: %d %s", r.StatusCode, rb)
	}
	return nil
}

// postJSONErr is postJSON for worker goroutines: it returns the error.
func postJSONErr(url, bearer string, body any) (*http.Response, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

// tinyPNG is a w×h PNG whose colour depends on n, so every upload differs.
func tinyPNG(t *testing.T, w, h, n int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{R: uint8(n), G: uint8(n >> 8), B: uint8(x * 255 / w), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parallel runs f(i) for i in [0,n) on k goroutines and returns the first
// errors (at most 5), each naming its index.
func parallel(n, k int, f func(i int) error) []error {
	var (
		next atomic.Int64
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, fmt.Errorf("#%d: %w", i, err))
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// TestScaleOut is the whole scaled-out deployment as separate processes:
// a Mosquitto upstream, two gateway replicas (roles broker,web) federated
// through it and sharing one localaws, and three processor-only processes
// publishing job events to Mosquitto through the external bridge. 300
// browsers spread over both replicas each upload one image; every browser
// must get exactly its own job's events, every job must complete exactly
// once, and every processor must have done part of the work.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const (
		browsers = 300
		workers  = 2 // per processor process
	)
	m := testkit.StartMosquitto(t)
	cfgFile := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cfgFile, []byte(scaleoutConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	la := testkit.FreeAddr(t)
	upstream := map[string]string{
		"HERALD_CONFIG": cfgFile, "HERALD_ROLES": "broker,web",
		"HERALD_FEDERATION_URL":      "mqtt://" + m.PasswordAddr,
		"HERALD_FEDERATION_USERNAME": testkit.MosquittoUser, "HERALD_FEDERATION_PASSWORD": testkit.MosquittoPassword,
	}
	r1 := startChild(t, "replica1", childOpts{dataDir: t.TempDir(), localawsAddr: la, env: upstream})
	env2 := map[string]string{"HERALD_LOCALAWS_EMBED": "false"}
	for k, v := range upstream {
		env2[k] = v
	}
	r2 := startChild(t, "replica2", childOpts{dataDir: t.TempDir(), localawsAddr: la, env: env2})
	replicas := []*child{r1, r2}
	var procs []*child
	for i := range 3 {
		procs = append(procs, startChild(t, fmt.Sprint("proc", i+1), childOpts{dataDir: t.TempDir(), localawsAddr: la, env: map[string]string{
			"HERALD_CONFIG": cfgFile, "HERALD_ROLES": "processor",
			"HERALD_BROKER_MODE": "mqtt", "HERALD_BROKER_URL": "mqtt://" + m.PasswordAddr,
			"HERALD_BROKER_USERNAME": testkit.MosquittoUser, "HERALD_BROKER_PASSWORD": testkit.MosquittoPassword,
			"HERALD_PROCESSOR_WORKERS": fmt.Sprint(workers),
		}}))
	}
	started := time.Since(start)

	bs := make([]*scaleoutBrowser, browsers)
	for i := range bs {
		bs[i] = &scaleoutBrowser{home: i % 2, topics: map[string]string{}, byID: map[string]event.Envelope{}}
	}
	t0 := time.Now()
	if errs := parallel(browsers, 16, func(i int) error { return bs[i].connect(t, replicas[bs[i].home].base) }); len(errs) > 0 {
		t.Fatalf("browsers did not connect: %v", errs)
	}
	connected := time.Since(t0)

	pngs := make([][]byte, browsers)
	for i := range pngs {
		pngs[i] = tinyPNG(t, 32, 32, i)
	}
	t1 := time.Now()
	if errs := parallel(browsers, 16, func(i int) error {
		return bs[i].upload(replicas[bs[i].home].base, fmt.Sprintf("img-%03d.png", i), pngs[i])
	}); len(errs) > 0 {
		t.Fatalf("uploads failed: %v", errs)
	}
	uploaded := time.Since(t1)

	deadline := time.Now().Add(60 * time.Second)
	for {
		done := 0
		for _, b := range bs {
			if b.completed() {
				done++
			}
		}
		if done == browsers {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("only %d of %d browsers got a final event within 60s of the last upload", done, browsers)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	finished := time.Since(t1)
	_, sqsc := awsAt("http://" + la)
	testkit.WaitFor(t, 20*time.Second, "queue drained", func() bool { return queueEmpty(t, sqsc) })
	time.Sleep(500 * time.Millisecond) // a late duplicate or stray event would arrive now

	s3c, _ := awsAt("http://" + la)
	jobsOf := map[string]int{} // job id → browser index
	deliveries, distinct := 0, 0
	for i, b := range bs {
		if _, dup := jobsOf[b.jobID]; dup || b.jobID == "" {
			t.Fatalf("browser %d: job id %q is empty or not unique", i, b.jobID)
		}
		jobsOf[b.jobID] = i
		got, topics, copies := b.events()
		deliveries += copies
		distinct += len(got)
		var accepted, completed int
		for id, e := range got {
			wantTopic := "apps/demo/channels/" + b.s.Channel + "/jobs/" + b.jobID
			if e.App != "demo" || e.Channel != b.s.Channel || e.JobID != b.jobID || topics[id] != wantTopic {
				t.Errorf("browser %d (replica%d): foreign event %s %s on %s for channel %s job %s, want channel %s job %s",
					i, b.home+1, id, e.Type, topics[id], e.Channel, e.JobID, b.s.Channel, b.jobID)
				continue
			}
			switch e.Type {
			case event.TypeAccepted:
				accepted++
			case event.TypeCompleted:
				completed++
				if len(e.Outputs) != 1 || e.Outputs[0].Name != "thumb-64" || e.Outputs[0].ContentType != "image/webp" {
					t.Errorf("browser %d: completed with outputs %+v, want one thumb-64 webp", i, e.Outputs)
				} else if i%25 == 0 {
					checkStored(t, s3c, e)
				}
			case event.TypeProgress:
			default:
				t.Errorf("browser %d: job %s got %s %+v", i, b.jobID, e.Type, e.Error)
			}
		}
		if accepted != 1 || completed != 1 {
			t.Errorf("browser %d (replica%d) job %s: %d distinct job.accepted and %d job.completed, want 1 and 1 (got %d events)",
				i, b.home+1, b.jobID, accepted, completed, len(got))
		}
	}

	// Exactly one process ended each job; every processor did work.
	ended := map[string]int{}
	var share []string
	for _, p := range procs {
		accepted := len(p.logs(func(r map[string]any) bool { return r["msg"] == "job accepted" }))
		stored := len(p.logs(func(r map[string]any) bool { return r["msg"] == "output stored" }))
		ends := p.logs(func(r map[string]any) bool { return r["msg"] == "job" })
		for _, r := range ends {
			job, _ := r["job"].(string)
			ended[job]++
		}
		share = append(share, fmt.Sprintf("%s accepted %d, stored %d, ended %d", p.name, accepted, stored, len(ends)))
		if accepted == 0 || stored == 0 {
			t.Errorf("%s did no work: %d jobs accepted, %d outputs stored", p.name, accepted, stored)
		}
	}
	var bad []string
	for job := range jobsOf {
		if ended[job] != 1 {
			bad = append(bad, fmt.Sprintf("%s:%d", job, ended[job]))
		}
	}
	for job := range ended {
		if _, ok := jobsOf[job]; !ok {
			bad = append(bad, "unknown "+job)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		t.Errorf("jobs not ended exactly once across the processors (job:count): %v", bad)
	}
	// A browser that comes back on the other replica after its job ended
	// still learns how it ended: the final event is retained upstream and
	// comes with the new replica's upstream subscription.
	var movers []*scaleoutBrowser
	for i := 0; i < browsers; i += 10 {
		b := bs[i]
		_ = b.c.Disconnect(&paho.Disconnect{})
		movers = append(movers, &scaleoutBrowser{home: 1 - b.home, s: b.s, jobID: b.jobID, topics: map[string]string{}, byID: map[string]event.Envelope{}})
	}
	t2 := time.Now()
	if errs := parallel(len(movers), 8, func(i int) error {
		m := movers[i]
		return m.dial(t, "ws"+strings.TrimPrefix(replicas[m.home].base, "http")+"/mqtt")
	}); len(errs) > 0 {
		t.Fatalf("browsers did not reconnect on the other replica: %v", errs)
	}
	testkit.WaitFor(t, 20*time.Second, "retained final events on the other replica", func() bool {
		for _, m := range movers {
			if !m.completed() {
				return false
			}
		}
		return true
	})
	moved := time.Since(t2)
	for i, m := range movers {
		before, _, _ := bs[i*10].events()
		got, _, _ := m.events()
		for id, e := range got {
			if _, ok := before[id]; !ok || !e.Final() {
				t.Errorf("browser %d back on replica%d: got %s %s, want only the final event it saw before", i*10, m.home+1, id, e.Type)
			}
		}
	}
	t.Logf("%d browsers reconnected on the other replica got their retained final event in %v", len(movers), moved.Round(time.Millisecond))

	t.Logf("%d jobs over 2 federated replicas and 3 processors (%d workers each): processes ready in %v, browsers connected in %v, uploads in %v, all completed %v after the first upload; %d distinct events, %d deliveries; %v",
		browsers, workers, started.Round(time.Millisecond), connected.Round(time.Millisecond), uploaded.Round(time.Millisecond),
		finished.Round(time.Millisecond), distinct, deliveries, share)
}
