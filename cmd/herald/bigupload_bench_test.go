package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
)

// BenchmarkBigUpload sends one big WAV (HERALD_BENCH_UPLOAD_BYTES, e.g.
// 2147483648; the benchmark skips without it) through the whole pipeline
// of a real gateway process (HERALD_BIN): the Companion routes in 5 MiB
// parts as @uppy/aws-s3 sends them, one after another, to a localaws of
// its own process, then conversion until job.completed arrives over MQTT.
// It samples the gateway's RSS (broker, web and processor in one process;
// the converters are child processes and not counted) and times `aws s3
// cp` of the same file to the same localaws as the reference.
//
//	make bench-upload   (HERALD_BENCH_UPLOAD_BYTES=2147483648)
func BenchmarkBigUpload(b *testing.B) {
	size, _ := strconv.ParseInt(os.Getenv("HERALD_BENCH_UPLOAD_BYTES"), 10, 64)
	bin := os.Getenv("HERALD_BIN")
	if size <= 0 || bin == "" {
		b.Skip("set HERALD_BENCH_UPLOAD_BYTES and HERALD_BIN (make bench-upload)")
	}
	for _, tool := range []string{"aws", "ffmpeg", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	for range b.N {
		r := runBigUpload(b, bin, size)
		b.ReportMetric(r.rssPeakMB, "gateway-peak-RSS-MB")
		b.ReportMetric(r.upload.Seconds(), "upload-s")
		b.ReportMetric(r.awscli.Seconds(), "aws-s3-cp-s")
		b.ReportMetric(r.upload.Seconds()/r.awscli.Seconds(), "upload/aws-s3-cp")
		b.ReportMetric(r.convert.Seconds(), "complete-to-job.completed-s")
		b.Logf("%d bytes: upload %v (%d parts) vs aws s3 cp %v (ratio %.2f); complete → job.completed %v; gateway RSS idle %.1f MB, peak %.1f MB (VmHWM %.1f MB); outputs %s",
			size, r.upload.Round(time.Millisecond), r.parts, r.awscli.Round(time.Millisecond), r.upload.Seconds()/r.awscli.Seconds(),
			r.convert.Round(time.Millisecond), r.rssIdleMB, r.rssPeakMB, r.hwmMB, r.outputs)
	}
}

type bigUploadResult struct {
	upload, awscli, convert     time.Duration
	parts                       int
	rssIdleMB, rssPeakMB, hwmMB float64
	outputs                     string
}

func runBigUpload(b *testing.B, bin string, size int64) bigUploadResult {
	dir := b.TempDir()
	awsAddr, httpAddr := testkit.FreeAddr(b), testkit.FreeAddr(b)
	key := "bench-demo-api-key-0123456789"
	base := "http://" + httpAddr
	localaws := startProcess(b, bin, []string{"localaws", "--addr", awsAddr, "--data-dir", filepath.Join(dir, "aws"), "--cors-origins", base}, nil)
	_ = localaws
	waitHTTP(b, "http://"+awsAddr+"/", 30*time.Second)
	// Audio of the size asked for is hours long at CD rate, so the file is
	// 192 kHz 32-bit stereo (2 GiB: 23 minutes); the limits are raised so
	// that a busy machine does not time the conversion out.
	cfg := filepath.Join(dir, "herald.yaml")
	if err := os.WriteFile(cfg, []byte("processor:\n  convert:\n    audioTimeout: 30m\n    maxDuration: 4h\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	gw := startProcess(b, bin, []string{"serve", "--http-addr", httpAddr, "--data-dir", filepath.Join(dir, "gw"), "--config", cfg}, map[string]string{
		"HERALD_LOCALAWS_ADDR": awsAddr, "HERALD_LOCALAWS_EMBED": "false", "HERALD_DEMO_API_KEY": key,
	})
	waitHTTP(b, base+"/readyz", 60*time.Second)
	wav := filepath.Join(dir, "master.wav")
	writeWAV(b, wav, size)
	size = fileSize(b, wav)

	var r bigUploadResult
	// The reference: the aws CLI's own multipart upload of the same file.
	start := time.Now()
	cp := exec.Command("aws", "--endpoint-url", "http://"+awsAddr, "s3", "cp", "--no-progress", wav, "s3://herald/reference/master.wav")
	cp.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1")
	if out, err := cp.CombinedOutput(); err != nil {
		b.Fatalf("aws s3 cp: %v %s", err, out)
	}
	r.awscli = time.Since(start)

	resp, body := postJSON(b, base+"/v1/sessions", "", map[string]string{"app": "demo"})
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	var s session
	_ = json.Unmarshal(body, &s)
	mc, _, err := dialMQTT(b, s.MQTT.URL, browserConnect(s, true))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := mc.c.Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.Topic, QoS: 1}}}); err != nil {
		b.Fatal(err)
	}

	r.rssIdleMB = rssMB(b, gw.Process.Pid, "VmRSS")
	peak := sampleRSS(gw.Process.Pid)
	c := companion{base: base + "/v1/uploads", bearer: s.Token}
	start = time.Now()
	up := c.create(b, "master.wav", "audio/wav")
	parts := uploadParts(b, c, up, wav, size, job.MinPartSize)
	r.parts = len(parts)
	var done job.Completed
	c.must(b, "POST", uploadPath(up, "/complete"), map[string]any{"parts": parts}, &done)
	r.upload = time.Since(start)
	start = time.Now()
	for {
		p := mc.next(b, 30*time.Minute)
		var e event.Envelope
		if json.Unmarshal(p.Payload, &e) != nil || e.JobID != up.JobID || !e.Final() {
			continue
		}
		if e.Type != event.TypeCompleted {
			b.Fatalf("job ended %s: %s", e.Type, p.Payload)
		}
		var names []string
		for _, o := range e.Outputs {
			names = append(names, fmt.Sprintf("%s %s %d B", o.Name, o.ContentType, o.Bytes))
		}
		r.outputs = strings.Join(names, ", ")
		break
	}
	r.convert = time.Since(start)
	r.rssPeakMB = peak()
	r.hwmMB = rssMB(b, gw.Process.Pid, "VmHWM")
	return r
}

// uploadParts PUTs the file in parts of partSize through signed part
// URLs, one after another as @uppy/aws-s3 does, reading each part from the
// file as it is sent.
func uploadParts(b *testing.B, c companion, up job.MultipartUpload, path string, size, partSize int64) []job.Part {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var parts []job.Part
	for n, off := 1, int64(0); off < size; n, off = n+1, off+partSize {
		var signed struct {
			URL string `json:"url"`
		}
		c.must(b, "GET", partPath(up, n), nil, &signed)
		body := io.NewSectionReader(f, off, min(partSize, size-off))
		req, _ := http.NewRequest(http.MethodPut, signed.URL, body)
		req.ContentLength = body.Size()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("part %d: %d", n, resp.StatusCode)
		}
		parts = append(parts, job.Part{PartNumber: n, ETag: resp.Header.Get("ETag")})
	}
	return parts
}

// startProcess runs bin with args until the benchmark ends.
func startProcess(b *testing.B, bin string, args []string, env map[string]string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := os.Create(filepath.Join(b.TempDir(), "output.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		out.Close()
		if b.Failed() {
			log, _ := os.ReadFile(out.Name())
			b.Logf("%s %s output (last 4 KiB):\n%s", bin, args[0], log[max(0, len(log)-4096):])
		}
	})
	return cmd
}

func waitHTTP(b *testing.B, url string, within time.Duration) {
	b.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s not answering within %v", url, within)
}

// rssMB reads a VmRSS-style field of /proc/pid/status in MB.
func rssMB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	mb, err := procStatusMB(pid, field)
	if err != nil {
		b.Fatal(err)
	}
	return mb
}

func procStatusMB(pid int, field string) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1000, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// sampleRSS samples the process's VmRSS every 100 ms; the returned
// function stops and reports the largest sample in MB.
func sampleRSS(pid int) func() float64 {
	var mu sync.Mutex
	var peak float64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if mb, err := procStatusMB(pid, "VmRSS"); err == nil {
				mu.Lock()
				peak = max(peak, mb)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// writeWAV writes a 192 kHz 32-bit stereo WAV of a 441 Hz tone of about
// size bytes (whole seconds), a second at a time.
func writeWAV(b *testing.B, path string, size int64) {
	b.Helper()
	const rate, channels, bytesPer = 192000, 2, 4
	second := make([]byte, rate*channels*bytesPer)
	for i := range rate {
		v := int32(0.5 * math.MaxInt32 * math.Sin(2*math.Pi*441*float64(i)/rate))
		binary.LittleEndian.PutUint32(second[i*8:], uint32(v))
		binary.LittleEndian.PutUint32(second[i*8+4:], uint32(v))
	}
	seconds := max(1, (size-44)/int64(len(second)))
	data := seconds * int64(len(second))
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+data))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], channels)
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], rate*channels*bytesPer)
	binary.LittleEndian.PutUint16(h[32:], channels*bytesPer)
	binary.LittleEndian.PutUint16(h[34:], bytesPer*8)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(data))
	w.Write(h)
	for range seconds {
		w.Write(second)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

func fileSize(b *testing.B, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}
