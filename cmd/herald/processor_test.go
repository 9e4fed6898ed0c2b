package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// heraldBin is the herald binary the multi-process tests run, built once
// by TestMain.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", heraldBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build herald: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child is a `herald serve` running as its own process.
type child struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	base     string // http://127.0.0.1:port once ready
	mqtt     string // host:port of its MQTT TCP listener
	localaws string
	done     chan error

	log  testkit.Logs // its JSON log lines
	seen chan struct{}
}

type childOpts struct {
	dataDir, localawsAddr, mqttAddr string
	env                             map[string]string
}

func startChild(t *testing.T, name string, o childOpts) *child {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"HERALD_HTTP_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + o.dataDir, "HERALD_LOG_FORMAT=json",
		// The tests follow the processor's steps, logged at debug.
		"HERALD_LOG_LEVEL=debug",
		"HERALD_DEMO_API_KEY=" + testAPIKey, "HERALD_LOCALAWS_ADDR=" + o.localawsAddr, "HERALD_MQTT_ADDR=" + o.mqttAddr,
	}
	for k, v := range o.env {
		env = append(env, k+"="+v)
	}
	c := &child{t: t, name: name, mqtt: o.mqttAddr, localaws: "http://" + o.localawsAddr, done: make(chan error, 1), seen: make(chan struct{}, 1)}
	c.cmd = exec.Command(heraldBin, "serve")
	c.cmd.Env = env
	c.cmd.Stderr = os.Stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			if testing.Verbose() {
				t.Logf("%s: %s", name, sc.Bytes())
			}
			if rec["msg"] == "herald ready" {
				api, _ := rec["api"].(string)
				ready <- strings.TrimSuffix(api, "/v1/")
			}
			c.log.Add(rec)
			select {
			case c.seen <- struct{}{}:
			default:
			}
		}
		c.done <- c.cmd.Wait()
	}()
	t.Cleanup(func() { c.kill(syscall.SIGTERM) })
	select {
	case c.base = <-ready:
	case err := <-c.done:
		t.Fatalf("%s exited before ready: %v", name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready within 60s", name)
	}
	return c
}

// kill sends sig and waits for the process to end.
func (c *child) kill(sig syscall.Signal) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitLog waits for a log line matching f.
func (c *child) waitLog(within time.Duration, what string, f func(map[string]any) bool) {
	c.t.Helper()
	deadline := time.After(within)
	for {
		if len(c.logs(f)) > 0 {
			return
		}
		select {
		case <-c.seen:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("%s: no log line %s within %v", c.name, what, within)
		}
	}
}

func (c *child) logs(f func(map[string]any) bool) []map[string]any { return c.log.Matching(f) }

// jobEvents collects distinct job events from one or more brokers.
type jobEvents struct {
	mu    sync.Mutex
	byID  map[string]event.Envelope
	notes chan struct{}
}

func newJobEvents() *jobEvents {
	return &jobEvents{byID: map[string]event.Envelope{}, notes: make(chan struct{}, 1)}
}

// subscribeService connects a service client over plain MQTT to addr and
// records every event of the demo app.
func (j *jobEvents) subscribeService(t *testing.T, addr, clientID string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			var e event.Envelope
			if json.Unmarshal(pr.Packet.Payload, &e) == nil {
				j.mu.Lock()
				j.byID[e.ID] = e
				j.mu.Unlock()
				select {
				case j.notes <- struct{}{}:
				default:
				}
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 60, CleanStart: true, Username: "demo", UsernameFlag: true,
		Password: []byte(testAPIKey), PasswordFlag: true}); err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "apps/demo/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
}

// finals returns the distinct final events of job.
func (j *jobEvents) finals(job string) []event.Envelope {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []event.Envelope
	for _, e := range j.byID {
		if e.JobID == job && e.Final() {
			out = append(out, e)
		}
	}
	return out
}

func (j *jobEvents) waitFinal(t *testing.T, job string, within time.Duration) event.Envelope {
	t.Helper()
	deadline := time.After(within)
	for {
		if f := j.finals(job); len(f) > 0 {
			return f[0]
		}
		select {
		case <-j.notes:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("job %s: no final event within %v", job, within)
		}
	}
}

// uploadFile runs the browser's flow against a gateway: session, upload
// grant, multipart POST to the bucket. It returns the job id.
func uploadFile(t *testing.T, base, filename, contentType string, data []byte) (jobID, channel string) {
	t.Helper()
	resp, body := postJSON(t, base+"/v1/sessions", "", map[string]string{"app": "demo"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	var s session
	_ = json.Unmarshal(body, &s)
	resp, body = postJSON(t, base+"/v1/uploads", s.Token, map[string]any{"filename": filename, "contentType": contentType, "size": len(data)})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload grant: %d %s", resp.StatusCode, body)
	}
	var g struct {
		JobID  string            `json:"jobId"`
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(body, &g); err != nil {
		t.Fatal(err)
	}
	r, rb := testkit.Upload{URL: g.URL, Fields: g.Fields, Filename: filename, Data: data}.MustPost(t)
	if r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST to bucket: %d %s", r.StatusCode, rb)
	}
	return g.JobID, s.Channel
}

// awsAt returns SDK clients for a localaws endpoint.
func awsAt(endpoint string) (*s3.Client, *sqs.Client) {
	ac := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(endpoint)}
	return s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = true }), sqs.NewFromConfig(ac)
}

// queueEmpty reports whether herald-events holds no message, visible or
// in flight.
func queueEmpty(t *testing.T, c *sqs.Client) bool {
	t.Helper()
	ctx := context.Background()
	u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("herald-events")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: u.QueueUrl, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)])
	m, _ := strconv.Atoi(out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return n == 0 && m == 0
}

// checkStored checks every output of a completed job is in the bucket with
// its announced size and type.
func checkStored(t *testing.T, c *s3.Client, e event.Envelope) {
	t.Helper()
	if e.Type != event.TypeCompleted || len(e.Outputs) == 0 {
		t.Fatalf("job %s ended %s %+v, want job.completed with outputs", e.JobID, e.Type, e.Error)
	}
	for _, o := range e.Outputs {
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String(o.Key)})
		if err != nil {
			t.Errorf("output %s: %v", o.Key, err)
			continue
		}
		if aws.ToInt64(h.ContentLength) != o.Bytes || aws.ToString(h.ContentType) != o.ContentType {
			t.Errorf("output %s: %d bytes %s, event says %d %s", o.Key, aws.ToInt64(h.ContentLength), aws.ToString(h.ContentType), o.Bytes, o.ContentType)
		}
	}
}

// TestProcessorCrashMidConversion: a full `herald serve` is SIGKILLed while
// it converts; restarted on the same data dir it redoes the step once the
// message's visibility runs out, and the job completes exactly once.
func TestProcessorCrashMidConversion(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := t.TempDir()
	opts := childOpts{dataDir: dir, localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t),
		env: map[string]string{"HERALD_PROCESSOR_VISIBILITY": "3s", "HERALD_PROCESSOR_WORKERS": "1"}}
	g := startChild(t, "serve-1", opts)
	events := newJobEvents()
	events.subscribeService(t, opts.mqttAddr, "svc-crash-1")

	// Five minutes of audio: each of its three outputs takes seconds to
	// encode, so the kill lands inside a conversion.
	jobID, _ := uploadFile(t, g.base, "long.wav", "audio/wav", testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300)))
	started := func(r map[string]any) bool { return r["msg"] == "conversion started" && r["job"] == jobID }
	g.waitLog(60*time.Second, "conversion started", started)
	victim := g.logs(started)[0]["output"]
	g.kill(syscall.SIGKILL)
	if n := len(g.logs(func(r map[string]any) bool { return r["msg"] == "job" })); n != 0 {
		t.Fatalf("job ended before the kill; the test did not crash mid-conversion")
	}

	g2 := startChild(t, "serve-2", opts)
	events.subscribeService(t, opts.mqttAddr, "svc-crash-2") // the final event is retained
	final := events.waitFinal(t, jobID, 120*time.Second)
	if len(g2.logs(func(r map[string]any) bool { return started(r) && r["output"] == victim })) == 0 {
		t.Errorf("restarted process did not redo %v", victim)
	}
	s3c, sqsc := awsAt(g2.localaws)
	checkStored(t, s3c, final)
	testkit.WaitFor(t, 30*time.Second, "queue drained", func() bool { return queueEmpty(t, sqsc) })
	time.Sleep(500 * time.Millisecond) // a late duplicate would arrive now
	if f := events.finals(jobID); len(f) != 1 {
		t.Fatalf("got %d distinct final events, want exactly 1: %+v", len(f), f)
	}
}

// TestTwoProcessorsShareQueue: two full `herald serve` processes consume
// one queue (the second uses the first's localaws), each holding one
// message at a time (so neither takes the whole batch), each publishing into
// its own embedded broker; the test subscribes to both and merges: every job
// completes exactly once across both, and both did work. TestScaleOut covers
// processor-only processes publishing through a shared upstream broker.
func TestTwoProcessorsShareQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	la := testkit.FreeAddr(t)
	o1 := childOpts{dataDir: t.TempDir(), localawsAddr: la, mqttAddr: testkit.FreeAddr(t),
		env: map[string]string{"HERALD_PROCESSOR_WORKERS": "1", "HERALD_PROCESSOR_PREFETCH": "1"}}
	p1 := startChild(t, "proc-1", o1)
	o2 := childOpts{dataDir: t.TempDir(), localawsAddr: la, mqttAddr: testkit.FreeAddr(t),
		env: map[string]string{"HERALD_PROCESSOR_WORKERS": "1", "HERALD_PROCESSOR_PREFETCH": "1", "HERALD_LOCALAWS_EMBED": "false"}}
	p2 := startChild(t, "proc-2", o2)
	events := newJobEvents()
	events.subscribeService(t, o1.mqttAddr, "svc-share-1")
	events.subscribeService(t, o2.mqttAddr, "svc-share-2")

	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "x.png", 1500, 1000))
	var jobs []string
	for i := range 6 {
		id, _ := uploadFile(t, p1.base, fmt.Sprintf("img-%d.png", i), "image/png", png)
		jobs = append(jobs, id)
	}
	s3c, sqsc := awsAt("http://" + la)
	for _, id := range jobs {
		checkStored(t, s3c, events.waitFinal(t, id, 90*time.Second))
	}
	testkit.WaitFor(t, 30*time.Second, "queue drained", func() bool { return queueEmpty(t, sqsc) })
	time.Sleep(500 * time.Millisecond)
	for _, id := range jobs {
		if f := events.finals(id); len(f) != 1 {
			t.Errorf("job %s: %d distinct final events across both brokers, want 1", id, len(f))
		}
	}
	stored := func(c *child) int {
		return len(c.logs(func(r map[string]any) bool { return r["msg"] == "output stored" }))
	}
	n1, n2 := stored(p1), stored(p2)
	t.Logf("outputs stored: proc-1 %d, proc-2 %d", n1, n2)
	if n1 == 0 || n2 == 0 {
		t.Errorf("work not shared: proc-1 stored %d outputs, proc-2 %d", n1, n2)
	}
}
