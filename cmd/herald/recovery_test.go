package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// A job whose processor is killed mid-conversion resumes within 15 s with
// the default settings: the restarted process redoes the step once the
// message's (short, heartbeat-renewed) visibility runs out.
func TestCrashedJobResumesWithin15s(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	opts := childOpts{dataDir: t.TempDir(), localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t)}
	g := startChild(t, "crash-1", opts)
	events := newJobEvents()
	events.subscribeService(t, opts.mqttAddr, "svc-resume-1")

	jobID, _ := uploadFile(t, g.base, "long.wav", "audio/wav", testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300)))
	started := func(r map[string]any) bool { return r["msg"] == "conversion started" && r["job"] == jobID }
	g.waitLog(60*time.Second, "conversion started", started)
	victim := g.logs(started)[0]["output"]
	// Let a heartbeat or two renew the message first, as in a real crash.
	time.Sleep(4 * time.Second)
	g.kill(syscall.SIGKILL)
	killed := time.Now()

	g2 := startChild(t, "crash-2", opts)
	redo := func(r map[string]any) bool { return started(r) && r["output"] == victim }
	g2.waitLog(60*time.Second, "the step redone", redo)
	at, err := time.Parse(time.RFC3339Nano, g2.logs(redo)[0]["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if took := at.Sub(killed); took > 15*time.Second {
		t.Fatalf("the crashed step resumed %v after the kill, want under 15 s", took.Round(time.Millisecond))
	} else {
		t.Logf("the crashed step resumed %v after the kill", took.Round(time.Millisecond))
	}
	events.subscribeService(t, opts.mqttAddr, "svc-resume-2")
	events.waitFinal(t, jobID, 120*time.Second)
}
