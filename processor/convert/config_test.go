package convert

import (
	"errors"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/heraldgw/herald/processor/sniff"
)

func TestSelectPipeline(t *testing.T) {
	ps := DefaultPipelines()
	tests := []struct {
		name, key, mime string
		want            string // pipeline name, "" for none
	}{
		{"jpeg upload", "uploads/demo/ch/job/photo.jpg", sniff.JPEG, "image"},
		{"png named .jpg", "uploads/demo/ch/job/photo.jpg", sniff.PNG, "image"},
		{"svg", "uploads/demo/ch/job/logo.svg", sniff.SVG, "image"},
		{"flac", "uploads/demo/ch/job/song.flac", sniff.FLAC, "audio"},
		{"unknown type", "uploads/demo/ch/job/x.jpg", "", ""},
		{"outside uploads", "converted/demo/ch/job/thumb-256.webp", sniff.WebP, ""},
		{"unlisted type", "uploads/demo/ch/job/x.zip", "application/zip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectPipeline(ps, tt.key, tt.mime)
			if tt.want == "" {
				if !errors.Is(err, ErrNoPipeline) || CodeOf(err) != CodeUnsupportedFormat {
					t.Fatalf("SelectPipeline() = %v, %v; want unsupported_format ErrNoPipeline", got.Name, err)
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("SelectPipeline() = %q, %v; want %q", got.Name, err, tt.want)
			}
		})
	}
}

func TestPipelineWildcard(t *testing.T) {
	ps := []Pipeline{{Name: "any-image", MIME: []string{"image/*"}, Outputs: []OutputSpec{{Name: "t", Converter: "image", Format: "webp"}}}}
	if _, err := SelectPipeline(ps, "x", sniff.HEIC); err != nil {
		t.Errorf("image/* did not match image/heic: %v", err)
	}
	if _, err := SelectPipeline(ps, "x", sniff.MP3); err == nil {
		t.Error("image/* matched audio/mpeg")
	}
}

func TestDefaultOutputs(t *testing.T) {
	var got []string
	for _, p := range DefaultPipelines() {
		for _, o := range p.Outputs {
			got = append(got, o.FileName()+" "+o.ContentType())
		}
	}
	want := []string{
		"thumb-256.webp image/webp", "thumb-256.jpg image/jpeg",
		"preview-1024.webp image/webp", "preview-1024.jpg image/jpeg",
		"audio-mp3.mp3 audio/mpeg", "audio-opus.webm audio/webm", "waveform.png image/png",
	}
	if len(got) != len(want) {
		t.Fatalf("outputs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("output %d = %q, want %q", i, got[i], want[i])
		}
	}
	if err := validatePipelines(DefaultPipelines()); err != nil {
		t.Errorf("default pipelines invalid: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
maxPixels: 50000000
imageTimeout: 30s
memoryLimit: 1073741824
pipelines:
  - name: avatars
    keyPrefix: uploads/avatars/
    mime: ["image/*"]
    outputs:
      - {name: avatar-128, converter: image, format: webp, size: 128, quality: 70}
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	c = c.withDefaults()
	if c.MaxPixels != 50_000_000 || c.ImageTimeout != 30*time.Second || c.MemoryLimit != 1<<30 {
		t.Errorf("decoded %+v", c)
	}
	if c.AudioTimeout != 5*time.Minute || c.MaxDuration != time.Hour || c.StderrTail != 2048 {
		t.Errorf("defaults not filled: %+v", c)
	}
	if err := validatePipelines(c.Pipelines); err != nil {
		t.Fatal(err)
	}
	o := c.Pipelines[0].Outputs[0]
	if o.FileName() != "avatar-128.webp" || o.Size != 128 || o.Quality != 70 {
		t.Errorf("output %+v", o)
	}
}

func TestValidatePipelines(t *testing.T) {
	out := func(name, conv, format string) OutputSpec {
		return OutputSpec{Name: name, Converter: conv, Format: format}
	}
	tests := []struct {
		name string
		p    Pipeline
	}{
		{"no outputs", Pipeline{Name: "x"}},
		{"path in name", Pipeline{Outputs: []OutputSpec{out("a/b", "image", "webp")}}},
		{"dot name", Pipeline{Outputs: []OutputSpec{out(".x", "image", "webp")}}},
		{"bracket name", Pipeline{Outputs: []OutputSpec{out("a[Q=1]", "image", "webp")}}},
		{"unknown converter", Pipeline{Outputs: []OutputSpec{out("a", "video", "mp4")}}},
		{"wrong format", Pipeline{Outputs: []OutputSpec{out("a", "audio", "webp")}}},
		{"same file twice", Pipeline{Outputs: []OutputSpec{out("a", "image", "webp"), out("a", "image", "webp")}}},
		{"size", Pipeline{Outputs: []OutputSpec{{Name: "a", Converter: "image", Format: "webp", Size: 100000}}}},
		{"color", Pipeline{Outputs: []OutputSpec{{Name: "a", Converter: "waveform", Format: "png", Color: "red;rm -rf"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validatePipelines([]Pipeline{tt.p}); err == nil {
				t.Error("validatePipelines() = nil, want an error")
			}
		})
	}
}
