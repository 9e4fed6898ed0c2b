package convert

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/processor/sniff"
)

// fit is the size vips thumbnail gives a w×h image bounded by size×size
// without enlarging.
func fit(w, h, size int) (int, int) {
	if w <= size && h <= size {
		return w, h
	}
	s := math.Min(float64(size)/float64(w), float64(size)/float64(h))
	return int(math.Round(float64(w) * s)), int(math.Round(float64(h) * s))
}

func near(got, want int) bool { return got >= want-1 && got <= want+1 }

func TestConvertImages(t *testing.T) {
	e := newEngine(t, nil)
	src := t.TempDir()
	// Inputs are named without their extension, like the processor's
	// downloaded "input": only the bytes decide.
	inputs := []struct {
		name string
		path string
		w, h int
	}{
		{"jpeg", testkit.Image(t, src, "a.jpg", 1200, 800), 1200, 800},
		{"png", testkit.Image(t, src, "a.png", 1200, 800), 1200, 800},
		{"webp", testkit.Image(t, src, "a.webp", 1200, 800), 1200, 800},
		{"gif", testkit.Image(t, src, "a.gif", 300, 500), 300, 500},
		{"tiff", testkit.Image(t, src, "a.tif", 1200, 800), 1200, 800},
		{"heic", testkit.Image(t, src, "a.heic", 640, 480), 640, 480},
		{"avif", testkit.Image(t, src, "a.avif", 640, 480), 640, 480},
		{"psd", testkit.WriteFile(t, filepath.Join(src, "a.psd"), testkit.PSD(400, 300)), 400, 300},
		{"pdf", testkit.WriteFile(t, filepath.Join(src, "a.pdf"), testkit.PDF(612, 792)), 612, 792},
		{"svg", testkit.WriteFile(t, filepath.Join(src, "a.svg"), []byte(`<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="2000" height="500"><rect width="2000" height="500" fill="#0a0"/></svg>`)), 2000, 500},
	}
	specs := DefaultPipelines()[0].Outputs
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			wd := t.TempDir()
			input := filepath.Join(wd, "input")
			data, err := os.ReadFile(in.path)
			if err != nil {
				t.Fatal(err)
			}
			testkit.WriteFile(t, input, data)
			for _, spec := range specs {
				got, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
				if err != nil {
					t.Fatalf("Convert(%s) error = %v", spec.FileName(), err)
				}
				ww, wh := fit(in.w, in.h, spec.Size)
				if !near(got.Width, ww) || !near(got.Height, wh) {
					t.Errorf("%s: got %dx%d, want %dx%d", spec.FileName(), got.Width, got.Height, ww, wh)
				}
				if got.Path != filepath.Join(wd, spec.FileName()) || got.Name != spec.Name {
					t.Errorf("%s: got name %q path %q", spec.FileName(), got.Name, got.Path)
				}
				typ, err := sniff.File(got.Path)
				if err != nil {
					t.Fatal(err)
				}
				if typ.MIME != got.ContentType || got.ContentType != spec.ContentType() {
					t.Errorf("%s: wrote %s, reported %s, spec %s", spec.FileName(), typ.MIME, got.ContentType, spec.ContentType())
				}
				if st, err := os.Stat(got.Path); err != nil || st.Size() != got.Bytes {
					t.Errorf("%s: Bytes = %d, stat = %v %v", spec.FileName(), got.Bytes, st, err)
				}
			}
		})
	}
}

func TestConvertAudio(t *testing.T) {
	e := newEngine(t, nil)
	src := t.TempDir()
	const secs = 1.5
	specs := DefaultPipelines()[1].Outputs
	for _, name := range []string{"a.wav", "a.flac", "a.aiff", "a.mp3", "a.ogg", "a.m4a"} {
		t.Run(name, func(t *testing.T) {
			wd := t.TempDir()
			path := testkit.Audio(t, src, name, secs)
			input := filepath.Join(wd, "input")
			if err := os.Rename(path, input); err != nil {
				t.Fatal(err)
			}
			for _, spec := range specs {
				got, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
				if err != nil {
					t.Fatalf("Convert(%s) error = %v", spec.FileName(), err)
				}
				// Lossy encoders pad a frame or two at the ends.
				if d := got.Duration - time.Duration(secs*float64(time.Second)); d < -30*time.Millisecond || d > 80*time.Millisecond {
					t.Errorf("%s: Duration = %s, want ~%gs", spec.FileName(), got.Duration, secs)
				}
				typ, err := sniff.File(got.Path)
				if err != nil {
					t.Fatal(err)
				}
				wantSniff := map[string]string{"mp3": sniff.MP3, "opus": "", "png": sniff.PNG}[spec.Format]
				if typ.MIME != wantSniff {
					t.Errorf("%s: sniffed %q, want %q", spec.FileName(), typ.MIME, wantSniff)
				}
				if spec.Converter == ConverterWaveform && (got.Width != 1024 || got.Height != 160) {
					t.Errorf("waveform is %dx%d, want 1024x160", got.Width, got.Height)
				}
				if got.Bytes == 0 || got.ContentType != spec.ContentType() {
					t.Errorf("%s: %+v", spec.FileName(), got)
				}
			}
		})
	}
}

// TestConvertOpusIsWebM: the Opus output is a WebM (EBML) file, as its
// content type says.
func TestConvertOpusIsWebM(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := testkit.Audio(t, wd, "in.wav", 1)
	out, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd,
		Output: OutputSpec{Name: "o", Converter: ConverterAudio, Format: "opus"}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 4 || string(data[:4]) != "\x1a\x45\xdf\xa3" {
		t.Fatalf("output does not start with an EBML header: % x", data[:4])
	}
	if out.ContentType != "audio/webm" || filepath.Ext(out.Path) != ".webm" {
		t.Errorf("got %s %s", out.ContentType, out.Path)
	}
}

func TestWorkDirRemoved(t *testing.T) {
	e := newEngine(t, nil)
	parent := t.TempDir()
	src := testkit.Image(t, parent, "src.png", 300, 200)
	data, _ := os.ReadFile(src)
	spec := OutputSpec{Name: "thumb", Converter: ConverterImage, Format: "webp"}
	tests := []struct {
		name    string
		input   []byte
		wantErr bool
	}{
		{"success", data, false},
		{"failure", data[:len(data)/2], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, cleanup, err := NewWorkDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			input := testkit.WriteFile(t, filepath.Join(dir, "input"), tt.input)
			_, err = e.Convert(context.Background(), Request{InputPath: input, WorkDir: dir, Output: spec})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Convert() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if _, statErr := os.Stat(filepath.Join(dir, spec.FileName())); !errors.Is(statErr, os.ErrNotExist) {
					t.Errorf("failed conversion left %s behind (stat err %v)", spec.FileName(), statErr)
				}
			}
			if err := cleanup(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("work dir still there after cleanup: %v", err)
			}
		})
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 { // src.png
		t.Errorf("parent holds %d entries, want only src.png: %v", len(entries), entries)
	}
}

func TestNewFailsWithoutTools(t *testing.T) {
	_, err := New(context.Background(), Config{Vips: "herald-no-such-vips"}, nil)
	if err == nil {
		t.Fatal("New() with a missing tool succeeded")
	}
	_, err = New(context.Background(), Config{Pipelines: []Pipeline{{Name: "x", Outputs: []OutputSpec{{Name: "a", Converter: "image", Format: "bmp"}}}}}, nil)
	if err == nil {
		t.Fatal("New() with an invalid pipeline succeeded")
	}
}
