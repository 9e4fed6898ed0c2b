package convert

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// benchImages makes n photo-like JPEGs of w×h (smoothed noise, so neither
// trivially compressible nor pure noise).
func benchImages(b *testing.B, n, w, h int) []string {
	b.Helper()
	dir := b.TempDir()
	var paths []string
	for i := 0; i < n; i++ {
		base := filepath.Join(dir, fmt.Sprintf("img%02d", i))
		testkit.Exec(b, "vips", "gaussnoise", base+".n.v", strconv.Itoa(w), strconv.Itoa(h), "--sigma", "80", "--mean", strconv.Itoa(100+i))
		testkit.Exec(b, "vips", "gaussblur", base+".n.v", base+".b.v", "1.5")
		testkit.Exec(b, "vips", "cast", base+".b.v", base+".c.v", "uchar")
		testkit.Exec(b, "vips", "bandjoin", base+".c.v "+base+".c.v "+base+".c.v", base+".rgb.v")
		testkit.Exec(b, "vips", "copy", base+".rgb.v", base+".jpg[Q=85]")
		for _, ext := range []string{".n.v", ".b.v", ".c.v", ".rgb.v"} {
			os.Remove(base + ext)
		}
		paths = append(paths, base+".jpg")
	}
	return paths
}

// BenchmarkConvertVsVipsthumbnail runs, for each image, one output through
// the Engine (sniff, header check, prlimit, process group, read-back) and
// the same output with a bare vipsthumbnail, and reports both per image
// and their ratio. Both run in the same loop, so machine noise hits both.
func BenchmarkConvertVsVipsthumbnail(b *testing.B) {
	e := newEngine(b, nil)
	imgs := benchImages(b, 20, 2000, 1500)
	wd := b.TempDir()
	vipsthumbnail, err := exec.LookPath("vipsthumbnail")
	if err != nil {
		b.Skip("vipsthumbnail not installed")
	}
	for _, spec := range []OutputSpec{
		{Name: "thumb-256", Converter: ConverterImage, Format: "webp", Size: 256},
		{Name: "preview-1024", Converter: ConverterImage, Format: "jpeg", Size: 1024},
	} {
		b.Run(spec.FileName(), func(b *testing.B) {
			full := spec.withDefaults()
			rawOut := filepath.Join(wd, "raw-"+spec.FileName()) + saveOptions(full)
			var engine, raw time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				in := imgs[i%len(imgs)]
				t0 := time.Now()
				if _, err := e.Convert(context.Background(), Request{InputPath: in, WorkDir: wd, Output: spec}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				cmd := exec.Command(vipsthumbnail, in, "-s", strconv.Itoa(full.Size), "-o", rawOut)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("vipsthumbnail: %v\n%s", err, out)
				}
				engine += t1.Sub(t0)
				raw += time.Since(t1)
			}
			b.ReportMetric(float64(engine.Milliseconds())/float64(b.N), "engine-ms/img")
			b.ReportMetric(float64(raw.Milliseconds())/float64(b.N), "vipsthumbnail-ms/img")
			b.ReportMetric(float64(engine)/float64(raw), "ratio")
		})
	}
}

// BenchmarkImagePipeline is the default image pipeline (four outputs, one
// process each) per image, as the processor runs it.
func BenchmarkImagePipeline(b *testing.B) {
	e := newEngine(b, nil)
	imgs := benchImages(b, 20, 2000, 1500)
	wd := b.TempDir()
	specs := DefaultPipelines()[0].Outputs
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, spec := range specs {
			if _, err := e.Convert(context.Background(), Request{InputPath: imgs[i%len(imgs)], WorkDir: wd, Output: spec}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/img")
}
