package processor

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/event"
	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/convert"
)

// examplePipelines reads the pipelines of docs/examples/{file}.
func examplePipelines(t testing.TB, file string) []convert.Pipeline {
	t.Helper()
	var doc struct {
		Processor struct {
			Convert convert.Config `yaml:"convert"`
		} `yaml:"processor"`
	}
	testkit.DecodeYAMLFile(t, filepath.Join("..", "docs", "examples", file), &doc)
	return doc.Processor.Convert.Pipelines
}

// fetch GETs an output through its presigned URL, as a browser would.
func fetch(t testing.TB, o event.Output) []byte {
	t.Helper()
	resp, err := http.Get(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", o.Key, resp.StatusCode)
	}
	return b
}

// TestCommandExamplesEndToEnd: the documented jpegtran and pngquant
// pipelines, uploaded through a grant like a browser does, end in
// job.completed with an output that is smaller than the upload and
// decodes with vipsheader. An object put under uploads/ by other means,
// whose name tries to break out of a command line, converts the same (the
// command sees the processor's own name for the input; the name reaching
// argv is TestCommandPlaceholderInjection in convert).
func TestCommandExamplesEndToEnd(t *testing.T) {
	testkit.RequireTools(t, "jpegtran", "pngquant")
	pipelines := append(examplePipelines(t, "optimize-jpeg.yaml"), examplePipelines(t, "quantize-png.yaml")...)
	e := newEnv(t, func(c *Config) { c.Pipelines = pipelines })
	dir := t.TempDir()
	jpg := testkit.ReadFile(t, testkit.NoiseImage(t, dir, "photo.jpg", 800, 600))
	png := testkit.ReadFile(t, testkit.Image(t, dir, "shot.png", 800, 600))
	tests := []struct {
		filename, contentType string
		data                  []byte
		output, mime          string
		direct                bool
	}{
		{"photo.jpg", "image/jpeg", jpg, "optimized", "image/jpeg", false},
		{"shot.png", "image/png", png, "quantized", "image/png", false},
		{`it's a "shot"; rm -rf ~ $(reboot) ` + "`id`" + ` {output}.png`, "image/png", png, "quantized", "image/png", true},
	}
	for _, tt := range tests {
		t.Run(tt.filename, func(t *testing.T) {
			var id string
			if tt.direct {
				id = e.putUpload(t, tt.filename, tt.data)
			} else {
				id = e.upload(t, tt.filename, tt.contentType, tt.data)
			}
			final, _ := e.events.final(t, id, 60*time.Second)
			if final.Type != event.TypeCompleted || len(final.Outputs) != 1 {
				t.Fatalf("%s %+v %+v", final.Type, final.Error, final.Outputs)
			}
			o := final.Outputs[0]
			if o.Name != tt.output || o.ContentType != tt.mime || o.Width != 800 || o.Height != 600 {
				t.Errorf("output %+v", o)
			}
			got := fetch(t, o)
			if len(got) >= len(tt.data) || int64(len(got)) != o.Bytes {
				t.Errorf("output %d bytes (event says %d), upload %d: want smaller", len(got), o.Bytes, len(tt.data))
			}
			path := filepath.Join(t.TempDir(), "out")
			if err := os.WriteFile(path, got, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("vipsheader", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "800x600") {
				t.Errorf("vipsheader: %v %s", err, out)
			}
		})
	}
}

// TestCommandGlobEndToEnd: a command that writes several files declares
// them by glob; job.completed lists every one, each stored and fetchable.
func TestCommandGlobEndToEnd(t *testing.T) {
	pages := convert.OutputSpec{Name: "pages", Converter: convert.ConverterCommand, Format: "png", Files: "page-*.png",
		// vips writes one PNG per band: two "pages" from a two-band input.
		Command: []string{"/bin/sh", "-c", `for b in 0 1; do vips extract_band "$1" "$2/page-$b.png" $b || exit 1; done`, "sh", "{input}", "{outputDir}"}}
	thumb := convert.OutputSpec{Name: "thumb", Converter: convert.ConverterImage, Format: "webp", Size: 64}
	e := newEnv(t, func(c *Config) {
		c.Pipelines = []convert.Pipeline{{Name: "split", KeyPrefix: "uploads/", MIME: []string{"image/png"}, Outputs: []convert.OutputSpec{pages, thumb}}}
	})
	id := e.upload(t, "in.png", "image/png", testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "in.png", 120, 90)))
	final, evs := e.events.final(t, id, 60*time.Second)
	if final.Type != event.TypeCompleted {
		t.Fatalf("%s %+v", final.Type, final.Error)
	}
	var names []string
	for _, o := range final.Outputs {
		names = append(names, o.Name)
		if o.ContentType == "image/png" && (o.Width != 120 || o.Height != 90 || !bytes.HasPrefix(fetch(t, o), []byte("\x89PNG"))) {
			t.Errorf("output %+v", o)
		}
	}
	if got := strings.Join(names, ","); got != "pages-page-0,pages-page-1,thumb" {
		t.Errorf("outputs %s", got)
	}
	if final.Progress == nil || final.Progress.Done != 2 || final.Progress.Total != 2 {
		t.Errorf("progress %+v, want 2 of 2 (one per declared output)", final.Progress)
	}
	checkOutputs(t, final)
	if len(evs) != 4 { // accepted, 2 progress, completed
		t.Errorf("%d events", len(evs))
	}
}
