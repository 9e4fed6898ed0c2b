package processor

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
)

// BenchmarkPipeline uploads 200 photo-sized images (1500×1000, JPEG and
// PNG, photo-like noise) through presigned POSTs into localaws and waits
// for every job.completed over MQTT. It reports:
//
//   - jobs/s: jobs completed per second of wall time;
//   - p50-ms, p99-ms: upload finished (POST returned) → job.completed
//     received by the subscriber;
//   - notify-p99-ms: the last output stored → job.completed received
//     (marker, fan-in, presigning, the conditional final write, publish);
//   - idle-p50-ms: the same for 10 jobs sent one at a time afterwards
//     (no queueing behind other jobs);
//   - raw-files/s and ratio: the same four renditions per file made by
//     plain `vips thumbnail` processes with the very arguments the engine
//     uses (minus prlimit), NumCPU at a time, in the same run: half of the
//     files just before the Herald run and half just after, so a change in
//     the machine's load (it is shared) hits both sides alike;
//   - herald-cpu-ms/job, conv-cpu-ms/job, raw-cpu-ms/file and cpu-ratio:
//     CPU time (user+sys) of this process (localaws, broker, processor,
//     the simulated browsers) and of its converter children per job, of
//     the raw processes per file, and raw / (herald + converters). Unlike
//     wall time these do not depend on what else runs on the machine
//     (kernel threads writing back fsynced data are not counted).
//
// Run: go test -run XXX -bench Pipeline -benchtime 1x ./processor
func BenchmarkPipeline(b *testing.B) {
	const jobs = 200
	requireTools(b)
	dir := b.TempDir()
	var files [][]byte
	var paths []string
	for i := range 8 {
		name := fmt.Sprintf("photo-%d.jpg", i)
		if i%2 == 1 {
			name = fmt.Sprintf("photo-%d.png", i)
		}
		files = append(files, testkit.ReadFile(b, testkit.NoiseImage(b, dir, name, 1500, 1000)))
		paths = append(paths, filepath.Join(dir, name))
	}
	e := newEnv(b, func(c *Config) { c.Visibility, c.Heartbeat = time.Minute, 20*time.Second })

	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rawA := rawThumbnails(b, paths, 0, jobs/2)
		b.StartTimer()
		self0, children0 := cpuTimes()
		all, lat, elapsed := uploadAll(b, e, jobs, func(i int) (string, string, []byte) {
			if i%2 == 1 {
				return fmt.Sprintf("p%03d.png", i), "image/png", files[i%len(files)]
			}
			return fmt.Sprintf("p%03d.jpg", i), "image/jpeg", files[i%len(files)]
		})
		var notify []time.Duration
		for _, id := range all {
			final, _ := e.events.final(b, id, time.Minute)
			notify = append(notify, e.events.receivedAt(final.ID).Sub(lastOutputStored(e, id)))
		}
		self1, children1 := cpuTimes()
		// One job at a time on an idle processor: latency without queueing.
		var idle []time.Duration
		for i := range 10 {
			id := e.upload(b, fmt.Sprintf("idle%d.jpg", i), "image/jpeg", files[0])
			up := time.Now()
			final, _ := e.events.final(b, id, time.Minute)
			idle = append(idle, e.events.receivedAt(final.ID).Sub(up))
		}
		b.StopTimer()
		rawB := rawThumbnails(b, paths, jobs/2, jobs-jobs/2)
		b.StartTimer()
		// The idle jobs ran after self1, so only the batch is counted.
		reportVsRaw(b, jobs, elapsed, lat, self1-self0, children1-children0, rawA, rawB)
		b.ReportMetric(ms(percentile(notify, 50)), "notify-p50-ms")
		b.ReportMetric(ms(percentile(notify, 99)), "notify-p99-ms")
		b.ReportMetric(ms(percentile(idle, 50)), "idle-p50-ms")
	}
}

// uploadAll uploads n files (job(i) names each) through presigned POSTs
// from 4 simulated browsers, then waits for every job.completed. It
// returns the job ids, each job's upload finished → job.completed received
// latency, and the wall time from the first upload to the last
// job.completed.
func uploadAll(b *testing.B, e *env, n int, job func(i int) (name, contentType string, data []byte)) ([]string, []time.Duration, time.Duration) {
	ids := make([]string, n)
	uploaded := make([]time.Time, n)
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name, ct, data := job(i)
				ids[i] = e.upload(b, name, ct, data)
				uploaded[i] = time.Now()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var lat []time.Duration
	var last time.Time
	for i, id := range ids {
		final, _ := e.events.final(b, id, 5*time.Minute)
		if final.Type != event.TypeCompleted {
			b.Fatalf("job %s: %s %+v", id, final.Type, final.Error)
		}
		got := e.events.receivedAt(final.ID)
		if got.After(last) {
			last = got
		}
		lat = append(lat, got.Sub(uploaded[i]))
	}
	return ids, lat, last.Sub(start)
}

// reportVsRaw reports a batch of jobs against the raw runs of the same
// files: jobs/s, latency percentiles, raw-files/s and their ratio, and
// the CPU per job (this process; its converter children) and per raw
// file with their ratio.
func reportVsRaw(b *testing.B, jobs int, elapsed time.Duration, lat []time.Duration, self, children time.Duration, rawA, rawB rawResult) {
	raw := float64(jobs) / (rawA.wall + rawB.wall).Seconds()
	rawCPU := ms(rawA.cpu+rawB.cpu) / float64(jobs)
	heraldCPU, convCPU := ms(self)/float64(jobs), ms(children)/float64(jobs)
	rate := float64(jobs) / elapsed.Seconds()
	b.ReportMetric(rate, "jobs/s")
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(raw, "raw-files/s")
	b.ReportMetric(rate/raw, "ratio")
	b.ReportMetric(heraldCPU, "herald-cpu-ms/job")
	b.ReportMetric(convCPU, "conv-cpu-ms/job")
	b.ReportMetric(rawCPU, "raw-cpu-ms/file")
	b.ReportMetric(rawCPU/(heraldCPU+convCPU), "cpu-ratio")
}

// cpuTimes returns the CPU time (user+sys) used so far by this process
// and by its waited-for children.
func cpuTimes() (self, children time.Duration) {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	self = time.Duration(r.Utime.Nano() + r.Stime.Nano())
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &r)
	children = time.Duration(r.Utime.Nano() + r.Stime.Nano())
	return self, children
}

// lastOutputStored is when the job's last output was stored, from the
// processor's "output stored" log lines.
func lastOutputStored(e *env, jobID string) time.Time {
	var last time.Time
	for _, r := range e.logs.Matching(func(r map[string]any) bool { return r["msg"] == "output stored" && r["job"] == jobID }) {
		ts, _ := r["time"].(string)
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.After(last) {
			last = t
		}
	}
	return last
}

// rawResult is one raw run: its wall time and its children's CPU time.
type rawResult struct{ wall, cpu time.Duration }

// rawThumbnails makes the image pipeline's four renditions of files
// first..first+n-1 (cycling through paths) with plain `vips thumbnail`,
// with the arguments the engine gives it, NumCPU files at a time.
func rawThumbnails(b *testing.B, paths []string, first, n int) rawResult {
	renditions := []struct{ size, file string }{
		{"256", "t.webp[Q=80,strip]"},
		{"256", "t.jpg[Q=82,strip,background=255,optimize_coding]"},
		{"1024", "p.webp[Q=80,strip]"},
		{"1024", "p.jpg[Q=82,strip,background=255,optimize_coding]"},
	}
	return rawRun(b, paths, first, n, func(in, out string) [][]string {
		var cmds [][]string
		for _, r := range renditions {
			cmds = append(cmds, []string{"vips", "thumbnail", in, out + "-" + r.file, r.size, "--height", r.size, "--size", "down", "--fail-on", "error"})
		}
		return cmds
	})
}

// rawRun runs, for files first..first+n-1 (cycling through paths), the
// commands cmds gives for the file and an output path prefix, NumCPU
// files at a time, as someone running the tool by hand would.
func rawRun(b *testing.B, paths []string, first, n int, cmds func(in, out string) [][]string) rawResult {
	out := b.TempDir()
	_, c0 := cpuTimes()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for _, argv := range cmds(paths[i%len(paths)], filepath.Join(out, fmt.Sprint(i))) {
					if b, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
						panic(fmt.Sprintf("%v: %v %s", argv, err, b))
					}
				}
			}
		}()
	}
	for i := first; i < first+n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)
	_, c1 := cpuTimes()
	return rawResult{wall: wall, cpu: c1 - c0}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
