package sqs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// crashChildEnv makes the test binary act as a queue server on that data
// directory instead of running tests (see TestMain).
const crashChildEnv = "HERALD_SQS_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(runCrashChild(dir))
	}
	os.Exit(m.Run())
}

// runCrashChild serves a Service on 127.0.0.1:0, prints "ADDR host:port"
// and serves until killed.
func runCrashChild(dir string) int {
	svc, err := New(Config{DataDir: dir, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	svc.SetBaseURL("http://" + ln.Addr().String())
	fmt.Printf("ADDR %s\n", ln.Addr())
	http.Serve(ln, svc)
	return 0
}

// startCrashChild re-executes the test binary as a server on dir.
func startCrashChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("child did not report its address: %q, %v", line, err)
	}
	return cmd, "http://" + addr
}

// TestCrashDurability kills the server with SIGKILL while senders are busy
// and checks, after a restart on the same directory, that every
// acknowledged message is there and that in-flight messages come back when
// their visibility timeout ends, with their receive count kept.
func TestCrashDurability(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	child, endpoint := startCrashChild(t, dir)
	c := newSDKClient(endpoint)
	url := createQueue(t, c, "durable", nil)

	// In flight at the crash: received once with a 4 s visibility timeout.
	const inflightVT = 4
	inflight := map[string]bool{}
	for i := range 2 {
		var entries []types.SendMessageBatchRequestEntry
		for j := range 10 {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("e", j)), MessageBody: aws.String(fmt.Sprintf("inflight %d/%d", i, j))})
		}
		if _, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	for len(inflight) < 20 {
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: inflightVT})
		if err != nil || len(out.Messages) == 0 {
			t.Fatalf("receive in-flight set: %v (%d so far)", err, len(inflight))
		}
		for _, m := range out.Messages {
			inflight[aws.ToString(m.MessageId)] = true
		}
	}
	receivedAt := time.Now()

	// Busy senders, killed mid-stream.
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				var ids []string
				if w%2 == 0 {
					var entries []types.SendMessageBatchRequestEntry
					for j := range 10 {
						entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("e", j)), MessageBody: aws.String(fmt.Sprintf("w%d i%d j%d", w, i, j))})
					}
					out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries})
					if err != nil {
						return
					}
					for _, e := range out.Successful {
						ids = append(ids, aws.ToString(e.MessageId))
					}
				} else {
					out, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(fmt.Sprintf("w%d i%d", w, i))})
					if err != nil {
						return
					}
					ids = append(ids, aws.ToString(out.MessageId))
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				if len(acked) >= 1500 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Log("fewer than 1500 sends in 30 s; killing anyway")
	}
	if err := child.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	child.Wait()
	wg.Wait()
	t.Logf("acknowledged before SIGKILL: %d messages", len(acked))

	// Restart on the same directory.
	_, endpoint = startCrashChild(t, dir)
	c = newSDKClient(endpoint)
	got, err := c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("durable")})
	if err != nil {
		t.Fatal(err)
	}
	url = aws.ToString(got.QueueUrl)

	seen := map[string]bool{}
	for range 100000 {
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 600})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			seen[aws.ToString(m.MessageId)] = true
		}
	}
	lost := 0
	for id := range acked {
		if !seen[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost in the crash", lost, len(acked))
	}
	early := 0
	for id := range inflight {
		if seen[id] {
			early++
		}
	}
	// Only meaningful while their visibility timeout can still be running.
	if time.Since(receivedAt) < (inflightVT-1)*time.Second && early > 0 {
		t.Errorf("%d in-flight messages visible right after restart; their visibility timeout had not ended", early)
	}

	// The in-flight ones come back once their timeout ends, received twice now.
	back := map[string]bool{}
	for id := range inflight {
		if seen[id] {
			back[id] = true
		}
	}
	for i := 0; i < 10 && len(back) < len(inflight); i++ {
		out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, VisibilityTimeout: 600, WaitTimeSeconds: 10,
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if !inflight[id] {
				t.Errorf("unexpected message %s after drain", id)
				continue
			}
			back[id] = true
			if rc := m.Attributes["ApproximateReceiveCount"]; rc != "2" {
				t.Errorf("message %s ApproximateReceiveCount = %s, want 2", id, rc)
			}
		}
	}
	if len(back) != len(inflight) {
		t.Errorf("%d of %d in-flight messages came back", len(back), len(inflight))
	}
}
