package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Test inputs are made at test time by the real encoders (vips, ffmpeg), or
// written here byte by byte where no encoder is at hand (PSD, PDF) or the
// file must be hostile.

func newEngine(t testing.TB, mod func(*Config)) *Engine {
	t.Helper()
	for _, tool := range []string{"vips", "vipsheader", "ffmpeg", "ffprobe", "prlimit"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	var cfg Config
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return e
}

func runTool(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}

// genImage writes a w×h RGB image to dir/name in the format its extension
// names. With noise, the image has photo-like entropy (for benchmarks).
func genImage(t testing.TB, dir, name string, w, h int, noise bool) string {
	t.Helper()
	src := filepath.Join(dir, name+".src.v")
	if noise {
		g := filepath.Join(dir, name+".g.v")
		runTool(t, "vips", "gaussnoise", g, fmt.Sprint(w), fmt.Sprint(h), "--sigma", "60")
		c := filepath.Join(dir, name+".c.v")
		runTool(t, "vips", "cast", g, c, "uchar")
		runTool(t, "vips", "bandjoin", c+" "+c+" "+c, src)
		os.Remove(g)
		os.Remove(c)
	} else {
		runTool(t, "vips", "black", src, fmt.Sprint(w), fmt.Sprint(h), "--bands", "3")
	}
	out := filepath.Join(dir, name)
	runTool(t, "vips", "copy", src, out)
	os.Remove(src)
	return out
}

// genAudio writes a sine tone of secs seconds to dir/name, format by
// extension.
func genAudio(t testing.TB, dir, name string, secs float64) string {
	t.Helper()
	out := filepath.Join(dir, name)
	runTool(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%g", secs), "-ac", "2", out)
	return out
}

// writePSD writes a flattened 8-bit RGB Photoshop file with no layers, the
// simplest document Photoshop itself reads (Adobe File Formats
// Specification, "Photoshop File Formats").
func writePSD(t testing.TB, path string, w, h int) string {
	t.Helper()
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
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePDF writes a one-page PDF of w×h points with a red rectangle.
func writePDF(t testing.TB, path string, w, h int) string {
	t.Helper()
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
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pngBomb is a valid PNG signature and IHDR declaring w×h RGB pixels,
// followed by a tiny IDAT and IEND: a few dozen bytes that would decode to
// gigabytes.
func pngBomb(w, h uint32) []byte {
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

// tiffBomb is a little-endian TIFF whose only IFD declares w×h 8-bit grey
// pixels in one uncompressed strip that is not there.
func tiffBomb(w, h uint32) []byte {
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
