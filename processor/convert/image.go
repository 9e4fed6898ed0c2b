package convert

import (
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // DecodeConfig for GIF headers
	"image/jpeg"
	"image/png"
	"os"
	"strconv"
	"strings"

	"golang.org/x/image/webp"

	"github.com/heraldgw/herald/processor/sniff"
)

// imageLoader is how libvips reads one sniffed type.
type imageLoader struct {
	// name is the libvips loader that must claim the file.
	name string
	// untrusted loaders are flagged so in libvips (they parse complex
	// formats with large third-party libraries). For every other type
	// Herald sets VIPS_BLOCK_UNTRUSTED=1, so libvips cannot fall through
	// to one of them (ImageMagick above all) whatever the bytes say. For
	// these types that switch would block the loader itself, so instead
	// vipsheader must first confirm that exactly this loader claims the
	// file.
	untrusted bool
	// goHeader: the dimensions can be read in Go, without a process.
	goHeader bool
	// vector inputs are rendered: their cost is bounded by
	// Config.VectorCPUTimeLimit, not by their pixel count.
	vector bool
}

var imageLoaders = map[string]imageLoader{
	sniff.JPEG: {name: "jpegload", goHeader: true},
	sniff.PNG:  {name: "pngload", goHeader: true},
	sniff.GIF:  {name: "gifload", goHeader: true},
	sniff.WebP: {name: "webpload", goHeader: true},
	sniff.TIFF: {name: "tiffload"},
	sniff.HEIC: {name: "heifload"},
	sniff.HEIF: {name: "heifload"},
	sniff.AVIF: {name: "heifload"},
	sniff.PDF:  {name: "pdfload", untrusted: true, vector: true},
	sniff.SVG:  {name: "svgload", untrusted: true, vector: true},
	// libvips has no PSD loader of its own; ImageMagick's PSD coder reads
	// the flattened composite.
	sniff.PSD: {name: "magickload", untrusted: true},
}

// image renders an image output with `vips thumbnail`, which shrinks on
// load (JPEG DCT scaling, WebP/HEIF/PDF/SVG render at the target size).
func (e *Engine) image(ctx context.Context, j job) (Output, error) {
	ld, ok := imageLoaders[j.typ.MIME]
	if !ok {
		return Output{}, fail(CodeUnsupportedFormat, j.op, fmt.Errorf("%s is not an image type", j.typ.MIME))
	}
	if !e.loaders[ld.name] {
		return Output{}, fail(CodeUnsupportedFormat, j.op, fmt.Errorf("%s: this libvips has no %s", j.typ.MIME, ld.name))
	}
	if v := e.cfg.VectorCPUTimeLimit; ld.vector && v > 0 && (j.limits.CPUTimeLimit <= 0 || j.limits.CPUTimeLimit > v) {
		j.limits.CPUTimeLimit = v
	}
	var env []string
	if !ld.untrusted {
		env = []string{"VIPS_BLOCK_UNTRUSTED=1"}
	}

	w, h, err := e.imageSize(ctx, j, ld, env)
	if err != nil {
		return Output{}, err
	}
	if int64(w)*int64(h) > e.cfg.MaxPixels {
		return Output{}, fail(CodeTooLarge, j.op, fmt.Errorf("%s declares %dx%d = %d pixels, limit %d", j.typ.MIME, w, h, int64(w)*int64(h), e.cfg.MaxPixels))
	}

	size := strconv.Itoa(j.spec.Size)
	err = e.run(ctx, j.proc(env, e.vips, "thumbnail", j.in, j.out+saveOptions(j.spec), size,
		"--height", size, "--size", "down", "--fail-on", "error"))
	if err != nil {
		return Output{}, vipsError(j.op, "vips thumbnail", err)
	}
	ow, oh, err := outputSize(j.out)
	if err != nil {
		return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("read back output: %w", err))
	}
	return finish(j, ow, oh, 0)
}

// saveOptions are the libvips saver options, appended to the output path.
func saveOptions(o OutputSpec) string {
	q := strconv.Itoa(o.Quality)
	switch o.Format {
	case "jpeg":
		// JPEG has no alpha: flatten onto white, not libvips' black.
		return "[Q=" + q + ",strip,background=255,optimize_coding]"
	case "png":
		return "[strip,compression=6]"
	}
	return "[Q=" + q + ",strip]"
}

// imageSize returns the declared dimensions without decoding pixels: in Go
// for the simple container formats, else from vipsheader, which also proves
// which loader libvips picks.
func (e *Engine) imageSize(ctx context.Context, j job, ld imageLoader, env []string) (int, int, error) {
	if ld.goHeader {
		f, err := os.Open(j.in)
		if err != nil {
			return 0, 0, fail(CodeConverterFailed, j.op, err)
		}
		defer f.Close()
		var cfg image.Config
		if j.typ.MIME == sniff.WebP {
			cfg, err = webp.DecodeConfig(f)
		} else {
			cfg, _, err = image.DecodeConfig(f)
		}
		if err != nil {
			return 0, 0, fail(CodeCorruptInput, j.op, fmt.Errorf("read %s header: %w", j.typ.MIME, err))
		}
		return cfg.Width, cfg.Height, nil
	}

	// vipsheader prints "<path>: <w>x<h> <format>, <n> bands, <interp>, <loader>".
	stdout := newTail(4096)
	err := e.runOut(ctx, j.proc(env, e.header, j.in), stdout)
	if err != nil {
		var pe *procError
		if errors.As(err, &pe) && !pe.resourceFailure() {
			return 0, 0, fail(CodeCorruptInput, j.op, fmt.Errorf("read %s header: %w", j.typ.MIME, err))
		}
		return 0, 0, vipsError(j.op, "vipsheader", err)
	}
	line := strings.TrimSpace(stdout.String())
	rest, ok := strings.CutPrefix(line, j.in+": ")
	if !ok {
		return 0, 0, fail(CodeConverterFailed, j.op, fmt.Errorf("unexpected vipsheader output %q", line))
	}
	fields := strings.Split(rest, ", ")
	loader := fields[len(fields)-1]
	if loader != ld.name {
		// The bytes looked like one type to us and another to libvips:
		// refuse rather than let an unexpected decoder at them.
		return 0, 0, fail(CodeUnsupportedFormat, j.op, fmt.Errorf("libvips would read this %s with %s, want %s", j.typ.MIME, loader, ld.name))
	}
	dims, _, _ := strings.Cut(fields[0], " ")
	ws, hs, _ := strings.Cut(dims, "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, fail(CodeCorruptInput, j.op, fmt.Errorf("vipsheader size %q", fields[0]))
	}
	return w, h, nil
}

// vipsError classifies a failed libvips run. The header was read fine, so
// a loader complaint means the pixel data is damaged (corrupt_input); a
// crash or anything else is converter_failed. libvips only reports through
// stderr text, so that is what is inspected.
func vipsError(op, step string, err error) error {
	return toolError(op, step, err, "load", "vipsjpeg", "libpng", "tiff", "premature", "truncat", "corrupt", "read error", "not a known")
}

// outputSize reads the dimensions of a file libvips or ffmpeg wrote.
func outputSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var cfg image.Config
	switch {
	case strings.HasSuffix(path, ".webp"):
		cfg, err = webp.DecodeConfig(f)
	case strings.HasSuffix(path, ".jpg"):
		cfg, err = jpeg.DecodeConfig(f)
	case strings.HasSuffix(path, ".png"):
		cfg, err = png.DecodeConfig(f)
	default:
		return 0, 0, fmt.Errorf("no size reader for %s", path)
	}
	return cfg.Width, cfg.Height, err
}
