package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/eclipse/paho.golang/paho"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/heraldgw/herald/internal/testkit"
)

// scrape reads a gateway's /metrics: the parsed families and the set of
// sample names (histograms as name_bucket, name_sum, name_count).
func scrape(t *testing.T, base string) (map[string]*dto.MetricFamily, map[string]bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		names[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	return fams, names
}

// sample is the value of family name's sample with exactly labels, or -1.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// TestMetricsAfterMixedRunAndDashboard runs a whole gateway through a
// completed job, a failed one, a message that ends in the dead-letter
// queue, a service event, a browser that connects and leaves and one that
// is refused; then
// /metrics must count exactly that, and every metric the Grafana dashboard
// in deploy/ queries must be on /metrics.
func TestMetricsAfterMixedRunAndDashboard(t *testing.T) {
	g := startGatewayEnv(t, t.TempDir(), map[string]string{
		"HERALD_PROCESSOR_VISIBILITY":            "2s",
		"HERALD_PROCESSOR_QUEUE_SAMPLE_INTERVAL": "200ms",
	})
	ctx := context.Background()
	s3c, sqsc := awsAt("http://" + g.localaws)
	queue := lowerMaxReceive(t, sqsc, 2)

	ok, _ := uploadFile(t, g.base, "pic.png", "image/png", testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "x.png", 320, 240)))
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("inputs/notes.txt"),
		Body: strings.NewReader("not an image")}); err != nil {
		t.Fatal(err)
	}
	s := g.newSession(t)
	resp, body := postJSON(t, g.base+"/v1/jobs", testAPIKey, map[string]string{"channel": s.Channel, "bucket": "herald", "key": "inputs/notes.txt"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs: %d %s", resp.StatusCode, body)
	}
	var submitted struct{ JobID string }
	_ = json.Unmarshal(body, &submitted)
	resp, body = postJSON(t, g.base+"/v1/events", testAPIKey, map[string]any{"v": 1, "type": "x.note", "id": "evt_dash", "channel": s.Channel})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d %s", resp.StatusCode, body)
	}
	if _, err := sqsc.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queue), MessageBody: aws.String(`{"no":"event"}`)}); err != nil {
		t.Fatal(err)
	}
	ws := strings.Replace(g.base, "http", "ws", 1) + "/mqtt"
	mc, _, err := dialMQTT(t, ws, browserConnect(s, true))
	if err != nil {
		t.Fatal(err)
	}
	_ = mc.c.Disconnect(&paho.Disconnect{})
	bad := browserConnect(s, true)
	bad.Password = []byte("not-the-token")
	if _, _, err := dialMQTT(t, ws, bad); err == nil {
		t.Fatal("connect with a bad token was accepted")
	}

	waitJobState(t, g.base, ok, "completed")
	waitJobState(t, g.base, submitted.JobID, "failed")
	dlq := map[string]string{"queue": "dead_letter", "state": "visible"}
	testkit.WaitFor(t, 60*time.Second, "the malformed message in the dead-letter queue gauge", func() bool {
		fams, _ := scrape(t, g.base)
		return sample(fams, "herald_processor_queue_messages", dlq) == 1
	})

	fams, names := scrape(t, g.base)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"herald_processor_jobs_total", map[string]string{"app": "demo", "pipeline": "image", "outcome": "accepted"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": "demo", "pipeline": "image", "outcome": "completed"}, 1},
		{"herald_processor_jobs_total", map[string]string{"app": "demo", "pipeline": "none", "outcome": "failed"}, 1},
		{"herald_processor_job_failures_total", map[string]string{"app": "demo", "pipeline": "none", "code": "unsupported_format"}, 1},
		{"herald_processor_job_duration_seconds", map[string]string{"pipeline": "image", "outcome": "completed"}, 1},
		{"herald_processor_conversion_duration_seconds", map[string]string{"converter": "image", "outcome": "ok"}, 4},
		{"herald_processor_sqs_messages_redriven_total", nil, 1},
		{"herald_processor_queue_messages", dlq, 1},
		{"herald_processor_queue_messages", map[string]string{"queue": "main", "state": "visible"}, 0},
		{"herald_processor_conversions_running", nil, 0},
	} {
		if got := sample(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The upload's 4 output steps, its S3 event, the submitted job's start,
	// localaws's s3:TestEvent: all deleted; the malformed message never.
	if got := sample(fams, "herald_processor_sqs_messages_deleted_total", nil); got != 7 {
		t.Errorf("deleted = %v, want 7", got)
	}
	if got := sample(fams, "herald_processor_sqs_messages_received_total", nil); got != 9 {
		t.Errorf("received = %v, want 9 (7 deleted, the malformed one twice)", got)
	}

	// At the default level each job is one log line.
	for _, id := range []string{ok, submitted.JobID} {
		if lines := g.logged(id); len(lines) != 1 || !strings.Contains(lines[0], `"msg":"job"`) {
			t.Errorf("job %s: %d log lines, want its one \"job\" line: %s", id, len(lines), strings.Join(lines, "\n"))
		}
	}

	missing := map[string]bool{}
	for _, name := range dashboardMetrics(t) {
		if !names[name] {
			missing[name] = true
		}
	}
	if len(missing) > 0 {
		var ms []string
		for m := range missing {
			ms = append(ms, m)
		}
		sort.Strings(ms)
		t.Errorf("the dashboard queries metrics that /metrics does not have: %s", strings.Join(ms, ", "))
	}
}

// dashboardMetrics lists the metric names the Grafana dashboard's queries
// use, checking on the way that every panel has queries.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	metric := regexp.MustCompile(`\b(?:herald|go|process)_[a-z0-9_]+\b`)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			ms := metric.FindAllString(tg.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, m := range ms {
				seen[m] = true
			}
		}
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	if len(out) < 20 {
		t.Errorf("the dashboard queries only %d metrics: %v", len(out), out)
	}
	return out
}

// lowerMaxReceive sets herald-events' redrive policy to maxReceiveCount n
// (5 by default, too slow for a test) and returns the queue's URL.
func lowerMaxReceive(t *testing.T, c *sqs.Client, n int) string {
	t.Helper()
	ctx := context.Background()
	url := func(name string) string {
		u, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(u.QueueUrl)
	}
	q, dlq := url("herald-events"), url("herald-events-dlq")
	a, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(dlq), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := json.Marshal(map[string]any{"deadLetterTargetArn": a.Attributes[string(types.QueueAttributeNameQueueArn)], "maxReceiveCount": n})
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(q), Attributes: map[string]string{"RedrivePolicy": string(policy)}}); err != nil {
		t.Fatal(err)
	}
	// The processor's sampler reads the policy every 200 ms.
	time.Sleep(500 * time.Millisecond)
	return q
}
