package main

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// A job whose processor is killed mid-conversion resumes within 15 s with
// the default settings: the restarted process takes up the unfinished
// steps once their messages' (short, heartbeat-renewed) visibility runs
// out.
func TestCrashedJobResumesWithin15s(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	opts := childOpts{dataDir: t.TempDir(), localawsAddr: testkit.FreeAddr(t), mqttAddr: testkit.FreeAddr(t)}
	g := startChild(t, "crash-1", opts)
	events := newJobEvents()
	events.subscribeService(t, opts.mqttAddr, "svc-resume-1")

	jobID, _ := uploadFile(t, g.base, "long.wav", "audio/wav", testkit.ReadFile(t, testkit.Audio(t, t.TempDir(), "long.wav", 300)))
	logged := func(msg string) func(map[string]any) bool {
		return func(r map[string]any) bool { return r["msg"] == msg && r["job"] == jobID }
	}
	g.waitLog(60*time.Second, "conversion started", logged("conversion started"))
	time.Sleep(500 * time.Millisecond)
	g.kill(syscall.SIGKILL)
	killed := time.Now()
	var unfinished []any
	for _, r := range g.logs(logged("output step started")) {
		if !slices.ContainsFunc(g.logs(logged("output stored")), func(s map[string]any) bool { return s["output"] == r["output"] }) {
			unfinished = append(unfinished, r["output"])
		}
	}
	if len(unfinished) == 0 {
		t.Fatal("every started output was stored before the kill; the test did not crash mid-step")
	}

	g2 := startChild(t, "crash-2", opts)
	redo := func(r map[string]any) bool {
		return logged("output step started")(r) && slices.Contains(unfinished, r["output"])
	}
	g2.waitLog(60*time.Second, "an unfinished step taken up again", redo)
	at, err := time.Parse(time.RFC3339Nano, g2.logs(redo)[0]["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if took := at.Sub(killed); took > 15*time.Second {
		t.Fatalf("the crashed job resumed %v after the kill, want under 15 s", took.Round(time.Millisecond))
	} else {
		t.Logf("the crashed job resumed %v after the kill", took.Round(time.Millisecond))
	}
	events.subscribeService(t, opts.mqttAddr, "svc-resume-2")
	events.waitFinal(t, jobID, 120*time.Second)
}
