package processor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Inputs written byte by byte where no encoder is at hand (PSD, PDF) or the
// file must be hostile. Adapted from the convert package's tests.

// psdFile is a flattened 8-bit RGB Photoshop document with no layers.
func psdFile(w, h int) []byte {
	var b bytes.Buffer
	b.WriteString("8BPS")
	be := func(v any) { binary.Write(&b, binary.BigEndian, v) }
	be(uint16(1))
	b.Write(make([]byte, 6))
	be(uint16(3))
	be(uint32(h))
	be(uint32(w))
	be(uint16(8))
	be(uint16(3))
	be(uint32(0))
	be(uint32(0))
	be(uint32(0))
	be(uint16(0))
	for c := 0; c < 3; c++ {
		b.Write(bytes.Repeat([]byte{byte(80 * c)}, w*h))
	}
	return b.Bytes()
}

// pdfFile is a one-page PDF of w×h points with a red rectangle.
func pdfFile(w, h int) []byte {
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

// pngBomb declares w×h RGB pixels in a few dozen bytes.
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
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

const svgFile = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200"><rect width="300" height="200" fill="#36c"/></svg>`

// svgExternalRefs points at a local file and the network; neither may be
// read, and the entity makes librsvg refuse the document.
const svgExternalRefs = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY passwd SYSTEM "file:///etc/passwd"> <!ENTITY net SYSTEM "http://127.0.0.1:9/e"> ]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="200">
  <image xlink:href="file:///etc/passwd" width="100" height="100"/>
  <image href="http://127.0.0.1:9/x.png" x="100" width="100" height="100"/>
  <text x="10" y="150">&passwd;&net;</text>
</svg>`
