package processor

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// BenchmarkCommandPipeline runs the documented jpegtran pipeline
// (docs/examples/optimize-jpeg.yaml) end to end: 200 photo-sized JPEGs
// (1500×1000, photo-like noise, libvips' default quality 75) uploaded through presigned
// POSTs, each job's job.completed awaited over MQTT. It reports jobs/s,
// p50-ms/p99-ms (upload → job.completed), and, in the same run, the same
// jpegtran command line run by hand on the same files, NumCPU at a time
// (raw-files/s; half just before the Herald run, half just after), with
// ratio = jobs/s ÷ raw-files/s and the CPU per job and per raw file as in
// BenchmarkPipeline.
//
// Run: go test -run XXX -bench CommandPipeline -benchtime 1x ./processor
func BenchmarkCommandPipeline(b *testing.B) {
	const jobs = 200
	testkit.RequireTools(b, "jpegtran")
	pipelines := examplePipelines(b, "optimize-jpeg.yaml")
	dir := b.TempDir()
	var files [][]byte
	var paths []string
	for i := range 8 {
		name := fmt.Sprintf("photo-%d.jpg", i)
		files = append(files, testkit.ReadFile(b, testkit.NoiseImage(b, dir, name, 1500, 1000)))
		paths = append(paths, filepath.Join(dir, name))
	}
	e := newEnv(b, func(c *Config) {
		c.Pipelines = pipelines
		c.Visibility, c.Heartbeat = time.Minute, 20*time.Second
	})
	argv := pipelines[0].Outputs[0].Command
	byHand := func(in, out string) [][]string {
		cmd := make([]string, len(argv))
		for i, a := range argv {
			switch a {
			case "{input}":
				a = in
			case "{output}":
				a = out + ".jpg"
			}
			cmd[i] = a
		}
		return [][]string{cmd}
	}

	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rawA := rawRun(b, paths, 0, jobs/2, byHand)
		b.StartTimer()
		self0, children0 := cpuTimes()
		_, lat, elapsed := uploadAll(b, e, jobs, func(i int) (string, string, []byte) {
			return fmt.Sprintf("p%03d.jpg", i), "image/jpeg", files[i%len(files)]
		})
		self1, children1 := cpuTimes()
		b.StopTimer()
		rawB := rawRun(b, paths, jobs/2, jobs-jobs/2, byHand)
		b.StartTimer()
		reportVsRaw(b, jobs, elapsed, lat, self1-self0, children1-children0, rawA, rawB)
	}
}
