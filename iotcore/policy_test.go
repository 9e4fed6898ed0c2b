package iotcore

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/heraldgw/herald/tenant"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	region  = "us-east-1"
	account = "123456789012"
	channel = "AAAAAAAAAAAAAAAAAAAAAA"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", name, got, want)
	}
}

func TestSessionPolicyGolden(t *testing.T) {
	p, err := SessionPolicy(region, account, "demo", channel)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	golden(t, "session-policy.json", append(b, '\n'))
	doc, _ := p.JSON()
	if len(doc) > 2048 {
		t.Errorf("policy is %d bytes; STS allows 2048", len(doc))
	}
}

func TestSessionPolicyAllowsOnlyItsChannel(t *testing.T) {
	p, _ := SessionPolicy(region, account, "demo", channel)
	arn := "arn:aws:iot:" + region + ":" + account + ":"
	other := "BBBBBBBBBBBBBBBBBBBBBB"
	tests := []struct {
		name, action, resource string
		want                   bool
	}{
		{"connect as channel", "iot:Connect", arn + "client/" + channel, true},
		{"connect as another client", "iot:Connect", arn + "client/" + other, false},
		{"connect with a longer id", "iot:Connect", arn + "client/" + channel + "x", false},
		{"subscribe to own channel", "iot:Subscribe", arn + "topicfilter/apps/demo/channels/" + channel + "/#", true},
		{"subscribe to own jobs", "iot:Subscribe", arn + "topicfilter/apps/demo/channels/" + channel + "/jobs/+", true},
		{"subscribe to foreign channel", "iot:Subscribe", arn + "topicfilter/apps/demo/channels/" + other + "/#", false},
		{"subscribe to every channel", "iot:Subscribe", arn + "topicfilter/apps/demo/channels/+/#", false},
		{"subscribe to everything", "iot:Subscribe", arn + "topicfilter/#", false},
		{"subscribe in another app", "iot:Subscribe", arn + "topicfilter/apps/other/channels/" + channel + "/#", false},
		{"receive own job event", "iot:Receive", arn + "topic/apps/demo/channels/" + channel + "/jobs/j1", true},
		{"receive foreign topic", "iot:Receive", arn + "topic/apps/demo/channels/" + other + "/jobs/j1", false},
		{"receive in another region", "iot:Receive", "arn:aws:iot:eu-west-1:" + account + ":topic/apps/demo/channels/" + channel + "/events", false},
		{"publish anything", "iot:Publish", arn + "topic/apps/demo/channels/" + channel + "/events", false},
		{"action case-insensitive", "IOT:RECEIVE", arn + "topic/apps/demo/channels/" + channel + "/events", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Allows(tt.action, tt.resource); got != tt.want {
				t.Errorf("Allows(%s, %s) = %v, want %v", tt.action, tt.resource, got, tt.want)
			}
		})
	}
}

func TestPolicyDenyWins(t *testing.T) {
	p := &Policy{Statement: []Statement{
		{Effect: "Allow", Action: []string{"iot:*"}, Resource: []string{"*"}},
		{Effect: "Deny", Action: []string{"iot:Publish"}, Resource: []string{"arn:aws:iot:*:*:topic/$aws/*"}},
	}}
	if !p.Allows("iot:Publish", "arn:aws:iot:r:1:topic/apps/x") {
		t.Error("allow: got false")
	}
	if p.Allows("iot:Publish", "arn:aws:iot:r:1:topic/$aws/things/x") {
		t.Error("deny: got true")
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*", "abc/d", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*b*", "aaabaaa", true}, {"a*b*c", "a--b--b--c", true}, {"a*b", "a--b--c", false}, {"", "x", false},
	}
	for _, tt := range tests {
		if got := wildcard(tt.p, tt.s); got != tt.want {
			t.Errorf("wildcard(%q, %q) = %v, want %v", tt.p, tt.s, got, tt.want)
		}
	}
}

// stsServer answers AssumeRole like STS (Query protocol, XML) and records
// the form it got.
func stsServer(t *testing.T) (*httptest.Server, func() url.Values) {
	var mu sync.Mutex
	var form url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "AssumeRole" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		form = r.Form
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIATEMPORARY</AccessKeyId><SecretAccessKey>tempsecret</SecretAccessKey>
<SessionToken>tok+en/123=</SessionToken><Expiration>2026-11-23T18:15:00Z</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROA:herald</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/herald-browser/x</Arn></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv, func() url.Values { mu.Lock(); defer mu.Unlock(); return form }
}

// TestMinter runs the real STS client against an STS-shaped HTTP server.
func TestMinter(t *testing.T) {
	srv, form := stsServer(t)
	client := sts.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDSERVER", "serversecret", "")})
	at := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	m, err := NewMinter(Config{Endpoint: "abc123-ats.iot.us-east-1.amazonaws.com", Region: region,
		RoleARN: "arn:aws:iam::123456789012:role/herald-browser", STS: client, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	info, err := m.MQTTFor(context.Background(), tenant.Session{App: "demo", Channel: channel}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := form()
	if got := f.Get("DurationSeconds"); got != "900" {
		t.Errorf("DurationSeconds: got %s, want 900", got)
	}
	if got := f.Get("RoleSessionName"); got != "herald-"+channel {
		t.Errorf("RoleSessionName: got %s", got)
	}
	want, _ := SessionPolicy(region, account, "demo", channel)
	wantDoc, _ := want.JSON()
	if got := f.Get("Policy"); got != wantDoc {
		t.Errorf("Policy: got %s\nwant %s", got, wantDoc)
	}
	if info.ProtocolVersion != 5 || !strings.HasPrefix(info.URL, "wss://abc123-ats.iot.us-east-1.amazonaws.com/mqtt?") {
		t.Errorf("info: got %+v", info)
	}
	u, _ := url.Parse(info.URL)
	q := u.Query()
	if q.Get("X-Amz-Security-Token") != "tok+en/123=" || !strings.HasSuffix(info.URL, "&X-Amz-Security-Token=tok%2Ben%2F123%3D") {
		t.Errorf("token: got %s", info.URL)
	}
	if !strings.HasPrefix(q.Get("X-Amz-Credential"), "ASIATEMPORARY/20261123/us-east-1/iotdevicegateway/") {
		t.Errorf("credential scope: got %s", q.Get("X-Amz-Credential"))
	}
}

func TestNewMinterRefuses(t *testing.T) {
	srv, _ := stsServer(t)
	client := sts.NewFromConfig(aws.Config{Region: region, BaseEndpoint: aws.String(srv.URL)})
	for _, arn := range []string{"", "arn:aws:iam::123:role/x", "role/x"} {
		if _, err := NewMinter(Config{Endpoint: "e", Region: region, RoleARN: arn, STS: client}); err == nil {
			t.Errorf("role arn %q: got nil error", arn)
		}
	}
}
