package convert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// TestHostileInputs feeds inputs meant to hurt a converter and checks each
// ends in its documented code without a crash.
func TestHostileInputs(t *testing.T) {
	e := newEngine(t, nil)
	src := t.TempDir()
	png := testkit.Image(t, src, "ok.png", 400, 300)
	pngData, _ := os.ReadFile(png)
	jpg := testkit.NoiseImage(t, src, "ok.jpg", 400, 300)
	jpgData, _ := os.ReadFile(jpg)
	tif := testkit.NoiseImage(t, src, "ok.tif", 400, 300)
	tifData, _ := os.ReadFile(tif)
	wav := testkit.Audio(t, src, "ok.wav", 1)
	wavData, _ := os.ReadFile(wav)
	pwned := filepath.Join(src, "pwned")
	mvg := []byte("push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://127.0.0.1/x.jpg\"|touch \"" + pwned + ")'\npop graphic-context\n")

	thumb := OutputSpec{Name: "thumb", Converter: ConverterImage, Format: "webp"}
	mp3 := OutputSpec{Name: "a", Converter: ConverterAudio, Format: "mp3"}
	tests := []struct {
		name  string
		input []byte
		spec  OutputSpec
		want  Code // "" means it converts
	}{
		{"png bomb 100000x100000", testkit.PNGBomb(100000, 100000), thumb, CodeTooLarge},
		{"tiff bomb 100000x100000", testkit.TIFFBomb(100000, 100000), thumb, CodeTooLarge},
		{"svg bomb", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>`), thumb, CodeTooLarge},
		{"truncated tiff", tifData[:len(tifData)/2], thumb, CodeCorruptInput},
		{"truncated jpeg", jpgData[:len(jpgData)/2], thumb, CodeCorruptInput},
		{"truncated png", pngData[:len(pngData)-20], thumb, CodeCorruptInput},
		{"png magic then garbage", append([]byte("\x89PNG\r\n\x1a\n"), mvg...), thumb, CodeCorruptInput},
		// With VIPS_BLOCK_UNTRUSTED unset, libvips would hand this to
		// ImageMagick after libtiff gives up.
		{"tiff magic then mvg", append([]byte("II*\x00"), mvg...), thumb, CodeCorruptInput},
		{"mvg named .jpg", mvg, thumb, CodeUnsupportedFormat},
		{"text", []byte("just some text, not an image\n"), thumb, CodeUnsupportedFormat},
		{"zero bytes", nil, thumb, CodeCorruptInput},
		{"psd with bogus body", append(append([]byte("8BPS\x00\x01"), make([]byte, 20)...), mvg...), thumb, CodeCorruptInput},
		{"pdf header only", []byte("%PDF-1.7\n"), thumb, CodeCorruptInput},
		{"png fed to audio", pngData, mp3, CodeUnsupportedFormat},
		{"wav fed to image", wavData, thumb, CodeUnsupportedFormat},
		{"truncated wav header", wavData[:30], mp3, CodeCorruptInput},
		{"mp3 frame sync garbage", bytes.Repeat([]byte{0xFF, 0xFB, 0x90, 0x64, 1, 2, 3}, 3), mp3, CodeCorruptInput},
		{"png with lying extension converts", pngData, thumb, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wd := t.TempDir()
			input := testkit.WriteFile(t, filepath.Join(wd, "upload.jpg"), tt.input)
			out, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: tt.spec})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Convert() error = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Convert() = %+v, want %s", out, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not *Error", err, err)
			}
			if got := CodeOf(err); got != tt.want {
				t.Errorf("code = %s, want %s (error: %v)", got, tt.want, err)
			}
			if strings.Contains(err.Error(), wd) {
				t.Errorf("error leaks the work dir path: %v", err)
			}
		})
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("MVG payload ran")
	}
}

// watchFIFO makes a named pipe and reports whether anything opened it for
// reading. Opening a FIFO blocks until the other end opens too, so a
// reader cannot slip past unnoticed: the poller's non-blocking open for
// writing succeeds only while a reader is waiting.
func watchFIFO(t *testing.T, path string) (opened func() bool) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var hit atomic.Bool
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == nil {
				hit.Store(true)
				syscall.Write(fd, []byte("SECRET-FROM-FIFO\n"))
				syscall.Close(fd)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return func() bool {
		// One last poll after the converter finished would not help (it
		// has exited); what counts is what was seen while it ran.
		return hit.Load()
	}
}

// watchTCP listens on loopback and reports whether anything connected.
func watchTCP(t *testing.T) (addr string, connected func() bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hit atomic.Bool
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hit.Store(true)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-stopped })
	return ln.Addr().String(), hit.Load
}

// TestSVGExternalReferences: SVGs pointing at local files (by URL, <use>,
// stylesheet, external entity) and at a network address. None of them may
// be opened. Documented outcomes: URL references are skipped and the rest
// of the drawing renders (a safe output); external entities make librsvg
// reject the document, which fails as corrupt_input.
func TestSVGExternalReferences(t *testing.T) {
	e := newEngine(t, nil)
	outside := t.TempDir()
	fifo := func(name string) (string, func() bool) {
		p := filepath.Join(outside, name)
		return p, watchFIFO(t, p)
	}
	fifoImage, openedImage := fifo("image.fifo")
	fifoUse, openedUse := fifo("use.fifo")
	fifoCSS, openedCSS := fifo("style.fifo")
	fifoEntity, openedEntity := fifo("entity.fifo")
	addr, connected := watchTCP(t)

	refs := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<?xml-stylesheet type="text/css" href="file://%[4]s"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="200">
  <style>@import url("http://%[3]s/style.css");</style>
  <rect width="400" height="200" fill="#ffffff"/>
  <image xlink:href="file://%[1]s" width="100" height="100"/>
  <image href="file:///etc/passwd" width="100" height="100"/>
  <image href="http://%[3]s/x.png" x="100" width="100" height="100"/>
  <use xlink:href="file://%[2]s#frag"/>
  <rect x="200" width="100" height="100" fill="url(http://%[3]s/p.svg#g)"/>
</svg>`, fifoImage, fifoUse, addr, fifoCSS)
	entities := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY xxe SYSTEM "file://%[1]s"> <!ENTITY passwd SYSTEM "file:///etc/passwd"> <!ENTITY net SYSTEM "http://%[2]s/e"> ]>
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="200">
  <text x="10" y="150" font-size="20">&xxe;&passwd;&net;</text>
</svg>`, fifoEntity, addr)

	tests := []struct {
		name string
		svg  string
		want Code // "" is a safe render
	}{
		{"url references", refs, ""},
		{"external entities", entities, CodeCorruptInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wd := t.TempDir()
			input := testkit.WriteFile(t, filepath.Join(wd, "input"), []byte(tt.svg))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := e.Convert(ctx, Request{InputPath: input, WorkDir: wd,
				Output: OutputSpec{Name: "thumb", Converter: ConverterImage, Format: "png", Size: 400}})
			if got := CodeOf(err); err != nil && got != tt.want || err == nil && tt.want != "" {
				t.Fatalf("Convert() error = %v, want code %q", err, tt.want)
			}
			if err == nil {
				if out.Width != 400 || out.Height != 200 {
					t.Errorf("rendered %dx%d, want 400x200", out.Width, out.Height)
				}
				data, err := os.ReadFile(out.Path)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte("root:")) || bytes.Contains(data, []byte("SECRET-FROM-FIFO")) {
					t.Error("output contains referenced file content")
				}
			}
		})
	}
	for name, opened := range map[string]func() bool{
		"<image> file URL": openedImage, "<use> file URL": openedUse,
		"external entity": openedEntity, "xml-stylesheet": openedCSS,
	} {
		if opened() {
			t.Errorf("converter opened the file behind the %s", name)
		}
	}
	if connected() {
		t.Error("converter connected to the network")
	}
}

func TestMissingLoaderIsUnsupported(t *testing.T) {
	e := newEngine(t, nil)
	// Simulate a libvips built without libheif: the one fault that cannot
	// be caused on this machine.
	delete(e.loaders, "heifload")
	wd := t.TempDir()
	input := testkit.Image(t, wd, "in.heic", 64, 48)
	_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd,
		Output: OutputSpec{Name: "t", Converter: ConverterImage, Format: "jpeg"}})
	if got := CodeOf(err); got != CodeUnsupportedFormat {
		t.Fatalf("code = %s, want unsupported_format (err %v)", got, err)
	}
}

func TestMemoryLimitApplies(t *testing.T) {
	// 64 MiB of address space is not enough for vips to even map its
	// libraries: the limit must turn that into converter_failed, not be
	// mistaken for a bad input.
	e := newEngine(t, func(c *Config) { c.MemoryLimit = 64 << 20 })
	wd := t.TempDir()
	input := testkit.Image(t, wd, "in.tif", 64, 48)
	_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd,
		Output: OutputSpec{Name: "t", Converter: ConverterImage, Format: "jpeg"}})
	if got := CodeOf(err); got != CodeConverterFailed {
		t.Fatalf("code = %s, want converter_failed (err %v)", got, err)
	}
}

func TestConvertTimeout(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.AudioTimeout = 50 * time.Millisecond })
	wd := t.TempDir()
	// Ten minutes of audio take well over 50 ms to encode on any machine.
	input := filepath.Join(wd, "long.flac")
	testkit.Exec(t, "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "anoisesrc=d=600:r=8000", "-c:a", "flac", input)
	_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd,
		Output: OutputSpec{Name: "a", Converter: ConverterAudio, Format: "opus"}})
	if got := CodeOf(err); got != CodeTimeout {
		t.Fatalf("code = %s, want timeout (err %v)", got, err)
	}
	if _, err := os.Stat(filepath.Join(wd, "a.webm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("timed-out conversion left its output behind: %v", err)
	}
}

func TestConvertCanceledIsNotAFailure(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := testkit.Image(t, wd, "in.png", 64, 48)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Convert(ctx, Request{InputPath: input, WorkDir: wd,
		Output: OutputSpec{Name: "t", Converter: ConverterImage, Format: "jpeg"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var ce *Error
	if errors.As(err, &ce) {
		t.Errorf("canceled conversion reported as job failure %v", ce)
	}
}

func TestRequestValidation(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	good := OutputSpec{Name: "t", Converter: ConverterImage, Format: "jpeg"}
	input := testkit.Image(t, wd, "in.png", 64, 48)
	bracket := filepath.Join(wd, "in[fail].png")
	if err := os.Link(input, bracket); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
	}{
		{"bracket in input path", Request{InputPath: bracket, WorkDir: wd, Output: good}},
		{"no work dir", Request{InputPath: input, Output: good}},
		{"missing input", Request{InputPath: filepath.Join(wd, "nope"), WorkDir: wd, Output: good}},
		{"directory input", Request{InputPath: wd, WorkDir: wd, Output: good}},
		{"bad output name", Request{InputPath: input, WorkDir: wd, Output: OutputSpec{Name: "../x", Converter: "image", Format: "jpeg"}}},
		{"bad format", Request{InputPath: input, WorkDir: wd, Output: OutputSpec{Name: "x", Converter: "image", Format: "bmp"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Convert(context.Background(), tt.req)
			if got := CodeOf(err); got != CodeConverterFailed {
				t.Fatalf("code = %s, want converter_failed (err %v)", got, err)
			}
		})
	}
}

// TestVectorRenderCPUBudget renders a small SVG that is costly to render
// (blurred shapes, well under the pixel limit): its CPU budget, not its
// pixel count, stops it, with the timeout code; off, the same render
// completes and shows what it costs.
func TestVectorRenderCPUBudget(t *testing.T) {
	wd := t.TempDir()
	svg := testkit.WriteFile(t, filepath.Join(wd, "blur.svg"), testkit.BlurredSVG(200))
	spec := OutputSpec{Name: "preview-1024", Converter: ConverterImage, Format: "webp", Size: 1024}
	for _, tt := range []struct {
		name   string
		budget time.Duration
		want   Code
	}{
		{"budget 1s", time.Second, CodeTimeout},
		{"no budget", -1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, func(c *Config) { c.VectorCPUTimeLimit = tt.budget })
			start := time.Now()
			out, err := e.Convert(context.Background(), Request{InputPath: svg, WorkDir: t.TempDir(), Output: spec})
			cpu := out.CPU
			var ce *Error
			if errors.As(err, &ce) {
				cpu = ce.CPU
			}
			t.Logf("%s: %v wall, %v CPU, err %v", tt.name, time.Since(start).Round(time.Millisecond), cpu.Round(time.Millisecond), err)
			if got := CodeOf(err); err != nil && got != tt.want || err == nil && tt.want != "" {
				t.Fatalf("code %q, want %q (err %v)", got, tt.want, err)
			}
			if tt.want == "" && cpu <= time.Second {
				t.Errorf("unbudgeted render took %v of CPU: the sample is not costly enough to show the budget", cpu)
			}
		})
	}
}
