package testkit

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

// RequireTools skips the test unless every named program is on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed", n)
		}
	}
}

// AWSCLI is the path of Debian's awscli v2 (another aws first on PATH may
// be an old v1); the test is skipped when it is not installed.
func AWSCLI(t testing.TB) string {
	t.Helper()
	const path = "/usr/bin/aws"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("aws CLI not installed: %v", err)
	}
	return path
}

// AWSCLIEnv is the environment for running the aws CLI against localaws:
// its test credentials, no user configuration or instance metadata, no
// pager, home as HOME.
func AWSCLIEnv(home string) []string {
	return append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true",
		"HOME="+home)
}

// DecodeYAMLFile decodes the YAML file at path into dst, refusing unknown
// fields as `herald serve --config` does.
func DecodeYAMLFile(t testing.TB, path string, dst any) {
	t.Helper()
	b := ReadFile(t, path)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Logs collects the JSON lines a log/slog JSON handler writes, from any
// goroutine, for assertions.
type Logs struct {
	mu    sync.Mutex
	lines []map[string]any
}

// Write takes one JSON log line; anything else is ignored.
func (l *Logs) Write(p []byte) (int, error) {
	var rec map[string]any
	if json.Unmarshal(p, &rec) == nil {
		l.Add(rec)
	}
	return len(p), nil
}

// Add takes a line already decoded.
func (l *Logs) Add(rec map[string]any) {
	l.mu.Lock()
	l.lines = append(l.lines, rec)
	l.mu.Unlock()
}

// Matching returns the lines f accepts.
func (l *Logs) Matching(f func(map[string]any) bool) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.lines {
		if f(r) {
			out = append(out, r)
		}
	}
	return out
}

// Msg returns the lines whose message is msg.
func (l *Logs) Msg(msg string) []map[string]any {
	return l.Matching(func(r map[string]any) bool { return r["msg"] == msg })
}
