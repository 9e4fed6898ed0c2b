package testkit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Media samples are made at test time by the real encoders (vips, ffmpeg),
// or written here byte by byte where no encoder is at hand (PSD, PDF) or
// the file must be hostile. Nothing is downloaded or committed.

// Image writes a black w×h RGB image to dir/name in the format its
// extension names, and returns its path.
func Image(t testing.TB, dir, name string, w, h int) string {
	t.Helper()
	src := filepath.Join(dir, name+".src.v")
	Exec(t, "vips", "black", src, fmt.Sprint(w), fmt.Sprint(h), "--bands", "3")
	out := filepath.Join(dir, name)
	Exec(t, "vips", "copy", src, out)
	os.Remove(src)
	return out
}

// NoiseImage is Image with photo-like entropy, for benchmarks and anything
// that must not compress to nothing.
func NoiseImage(t testing.TB, dir, name string, w, h int) string {
	t.Helper()
	g := filepath.Join(dir, name+".g.v")
	Exec(t, "vips", "gaussnoise", g, fmt.Sprint(w), fmt.Sprint(h), "--sigma", "60")
	c := filepath.Join(dir, name+".c.v")
	Exec(t, "vips", "cast", g, c, "uchar")
	src := filepath.Join(dir, name+".src.v")
	Exec(t, "vips", "bandjoin", c+" "+c+" "+c, src)
	out := filepath.Join(dir, name)
	Exec(t, "vips", "copy", src, out)
	for _, f := range []string{g, c, src} {
		os.Remove(f)
	}
	return out
}

// Audio writes secs seconds of a 440 Hz stereo sine tone to dir/name in the
// format its extension names, and returns its path.
func Audio(t testing.TB, dir, name string, secs float64) string {
	t.Helper()
	out := filepath.Join(dir, name)
	Exec(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%g", secs), "-ac", "2", out)
	return out
}

// PSD is a flattened 8-bit RGB Photoshop file with no layers, the simplest
// document Photoshop itself reads (Adobe File Formats Specification,
// "Photoshop File Formats").
func PSD(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("8BPS")
	be := func(v any) { binary.Write(&b, binary.BigEndian, v) }
	be(uint16(1))            // version
	b.Write(make([]byte, 6)) // reserved
	be(uint16(3))            // channels
	be(uint32(h))
	be(uint32(w))
	be(uint16(8)) // depth
	be(uint16(3)) // RGB
	be(uint32(0)) // color mode data
	be(uint32(0)) // image resources
	be(uint32(0)) // layer and mask info
	be(uint16(0)) // raw image data, planar
	for c := 0; c < 3; c++ {
		b.Write(bytes.Repeat([]byte{byte(80 * c)}, w*h))
	}
	return b.Bytes()
}

// PDF is a one-page PDF of w×h points with a red rectangle.
func PDF(w, h int) []byte {
	var b bytes.Buffer
	var offs []int
	obj := func(s string) {
		offs = append(offs, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offs), s)
	}
	b.WriteString("%PDF-1.4\n")
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R >>", w, h))
	content := fmt.Sprintf("1 0 0 rg 10 10 %d %d re f", w-20, h-20)
	obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content), content))
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offs)+1, xref)
	return b.Bytes()
}

// BlurredSVG is a small SVG that is costly to render: a 9000×9000 canvas
// (under the pixel limit) with n large rectangles, each through a
// Gaussian blur of deviation 200. Rendered at 1024×1024 by vips, 200
// rectangles take about 3 s of CPU time; the file is about 80 bytes a
// rectangle. The same n gives the same bytes.
func BlurredSVG(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000">` +
		`<defs><filter id="b"><feGaussianBlur stdDeviation="200"/></filter></defs>`)
	x := uint32(1)
	next := func(m uint32) uint32 { // xorshift: deterministic, no math/rand
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x % m
	}
	for range n {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#%06x" filter="url(#b)"/>`,
			next(8000), next(8000), 100+next(1900), 100+next(1900), next(1<<24))
	}
	b.WriteString("</svg>")
	return b.Bytes()
}

// PNGBomb is a valid PNG signature and IHDR declaring w×h RGB pixels,
// followed by a tiny IDAT and IEND: a few dozen bytes that would decode to
// gigabytes.
func PNGBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, deflate, no filter, no interlace
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// TIFFBomb is a little-endian TIFF whose only IFD declares w×h 8-bit grey
// pixels in one uncompressed strip that is not there.
func TIFFBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("II*\x00")
	binary.Write(&b, binary.LittleEndian, uint32(8))
	type entry struct {
		tag, typ uint16
		count    uint32
		value    uint32
	}
	entries := []entry{
		{256, 4, 1, w},     // ImageWidth
		{257, 4, 1, h},     // ImageLength
		{258, 3, 1, 8},     // BitsPerSample
		{259, 3, 1, 1},     // Compression: none
		{262, 3, 1, 1},     // Photometric: black is zero
		{273, 4, 1, 200},   // StripOffsets
		{277, 3, 1, 1},     // SamplesPerPixel
		{278, 4, 1, h},     // RowsPerStrip
		{279, 4, 1, w * h}, // StripByteCounts
	}
	binary.Write(&b, binary.LittleEndian, uint16(len(entries)))
	for _, e := range entries {
		binary.Write(&b, binary.LittleEndian, e)
	}
	binary.Write(&b, binary.LittleEndian, uint32(0))
	b.Write(make([]byte, 256))
	return b.Bytes()
}

// WriteFile writes data to path and returns path.
func WriteFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ReadFile returns the contents of path.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Exec runs a tool (vips, ffmpeg) and fails the test with its output if
// it fails.
func Exec(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}
