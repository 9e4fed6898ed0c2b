package sigv4

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// crc64NVMEPoly is the reflected CRC-64/NVME polynomial used by
// x-amz-checksum-crc64nvme.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

// newChecksum returns the hash behind an x-amz-checksum-* header name, or nil.
func newChecksum(header string) hash.Hash {
	switch strings.ToLower(header) {
	case "x-amz-checksum-crc32":
		return crc32.NewIEEE()
	case "x-amz-checksum-crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "x-amz-checksum-crc64nvme":
		return crc64.New(crc64.MakeTable(crc64NVMEPoly))
	case "x-amz-checksum-sha1":
		return sha1.New()
	case "x-amz-checksum-sha256":
		return sha256.New()
	}
	return nil
}

// Body returns the request's payload, decoded and verified as it is read:
// aws-chunked framing is removed (signed chunk signatures and trailing
// checksums checked), a declared hex X-Amz-Content-Sha256 and any
// x-amz-checksum-* header are compared at EOF. A mismatch surfaces as a read
// error (ErrSignatureMismatch, ErrContentSHA256Mismatch,
// ErrChecksumMismatch, ErrIncompleteBody) from the final Read, so callers
// that commit only after a clean io.EOF never store a bad body. size is the
// decoded length, or -1 when unknown.
func (res *Result) Body(r *http.Request) (body io.Reader, size int64, err error) {
	size = r.ContentLength
	var src io.Reader = r.Body
	if src == nil {
		src = http.NoBody
	}
	switch res.PayloadHash {
	case StreamingSignedPayload, StreamingSignedPayloadTrailer, StreamingUnsignedPayloadTrailer:
		dl := r.Header.Get("X-Amz-Decoded-Content-Length")
		size, err = strconv.ParseInt(dl, 10, 64)
		if err != nil || size < 0 {
			return nil, 0, fmt.Errorf("x-amz-decoded-content-length %q: %w", dl, ErrMalformed)
		}
		cr := &chunkedReader{src: newLineReader(src), declared: size}
		if res.PayloadHash != StreamingUnsignedPayloadTrailer {
			cr.signed = true
			cr.key = res.signingKey
			cr.prevSig = res.Signature
			cr.amzDate = res.AmzDate
			cr.scope = res.Credential.Scope()
		}
		if res.PayloadHash != StreamingSignedPayload {
			for _, name := range strings.Split(r.Header.Get("X-Amz-Trailer"), ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if h := newChecksum(name); h != nil {
					cr.trailerSums = append(cr.trailerSums, namedSum{name: name, h: h})
				}
			}
		}
		body = cr
	case UnsignedPayload:
		body = src
	default:
		if !isLowerHex(res.PayloadHash, 64) {
			return nil, 0, fmt.Errorf("x-amz-content-sha256 %q: %w", res.PayloadHash, ErrMalformed)
		}
		body = &verifyReader{src: src, sums: []namedSum{{name: "x-amz-content-sha256", h: sha256.New(), want: res.PayloadHash, hexForm: true}}, size: size}
	}
	// Checksums sent as headers (not trailers) are verified over the
	// decoded bytes too.
	var sums []namedSum
	for name := range r.Header {
		lname := strings.ToLower(name)
		if !strings.HasPrefix(lname, "x-amz-checksum-") {
			continue
		}
		if h := newChecksum(lname); h != nil {
			sums = append(sums, namedSum{name: lname, h: h, want: r.Header.Get(name)})
		}
	}
	if len(sums) > 0 || size >= 0 {
		body = &verifyReader{src: body, sums: sums, size: size}
	}
	return body, size, nil
}

type namedSum struct {
	name    string
	h       hash.Hash
	want    string
	hexForm bool // want is hex (x-amz-content-sha256) rather than base64
}

func (s namedSum) ok() bool {
	sum := s.h.Sum(nil)
	if s.hexForm {
		return hex.EncodeToString(sum) == s.want
	}
	return base64.StdEncoding.EncodeToString(sum) == s.want
}

// verifyReader hashes what passes through and checks sums and length at EOF.
type verifyReader struct {
	src  io.Reader
	sums []namedSum
	size int64 // expected bytes, -1 unknown
	n    int64
	err  error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.src.Read(p)
	if n > 0 {
		v.n += int64(n)
		for _, s := range v.sums {
			s.h.Write(p[:n])
		}
		if v.size >= 0 && v.n > v.size {
			v.err = fmt.Errorf("body longer than %d bytes: %w", v.size, ErrIncompleteBody)
			return 0, v.err
		}
	}
	if err == io.EOF {
		if v.size >= 0 && v.n != v.size {
			v.err = fmt.Errorf("body has %d of %d bytes: %w", v.n, v.size, ErrIncompleteBody)
			return n, v.err
		}
		for _, s := range v.sums {
			if !s.ok() {
				if s.hexForm {
					v.err = ErrContentSHA256Mismatch
				} else {
					v.err = fmt.Errorf("%s: %w", s.name, ErrChecksumMismatch)
				}
				return n, v.err
			}
		}
		v.err = io.EOF
	} else if err != nil {
		v.err = err
	}
	return n, err
}

// lineReader is a minimal buffered reader: aws-chunked needs line reads and
// bulk reads on the same stream.
type lineReader struct {
	src      io.Reader
	buf      []byte
	r, w     int
	srcError error
}

func newLineReader(src io.Reader) *lineReader {
	return &lineReader{src: src, buf: make([]byte, 64<<10)}
}

func (l *lineReader) fill() error {
	if l.srcError != nil {
		return l.srcError
	}
	if l.r > 0 {
		copy(l.buf, l.buf[l.r:l.w])
		l.w -= l.r
		l.r = 0
	}
	n, err := l.src.Read(l.buf[l.w:])
	l.w += n
	if err != nil {
		l.srcError = err
		if n > 0 {
			return nil
		}
	}
	return err
}

// line returns the next line without its CRLF; lines are bounded at 4 KiB.
func (l *lineReader) line() (string, error) {
	for {
		if i := strings.Index(string(l.buf[l.r:l.w]), "\r\n"); i >= 0 {
			s := string(l.buf[l.r : l.r+i])
			l.r += i + 2
			return s, nil
		}
		if l.w-l.r > 4096 {
			return "", fmt.Errorf("aws-chunked line over 4 KiB: %w", ErrMalformed)
		}
		if err := l.fill(); err != nil {
			if err == io.EOF {
				if l.w > l.r {
					s := string(l.buf[l.r:l.w])
					l.r = l.w
					return s, nil
				}
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

func (l *lineReader) Read(p []byte) (int, error) {
	if l.r == l.w {
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf[l.r:l.w])
	l.r += n
	return n, nil
}

// chunkedReader decodes the aws-chunked content encoding:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//	[trailer-name:value\r\n ...] \r\n
type chunkedReader struct {
	src         *lineReader
	declared    int64
	got         int64
	remaining   int64
	signed      bool
	key         []byte
	prevSig     string
	amzDate     string
	scope       string
	chunkSig    string
	chunkHash   hash.Hash
	trailerSums []namedSum
	err         error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.remaining == 0 {
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.src.Read(p)
	if n > 0 {
		c.remaining -= int64(n)
		c.got += int64(n)
		if c.chunkHash != nil {
			c.chunkHash.Write(p[:n])
		}
		for _, s := range c.trailerSums {
			s.h.Write(p[:n])
		}
	}
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("aws-chunked body ends inside a chunk: %w", ErrIncompleteBody)
		}
		c.err = err
		return n, err
	}
	if c.remaining == 0 {
		if err := c.endChunk(); err != nil {
			c.err = err
			return n, err
		}
	}
	return n, nil
}

func (c *chunkedReader) nextChunk() error {
	hdr, err := c.src.line()
	if err != nil {
		return fmt.Errorf("aws-chunked chunk header: %w", ErrIncompleteBody)
	}
	sizeStr, ext, _ := strings.Cut(hdr, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeStr), 16, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("aws-chunked chunk size %q: %w", sizeStr, ErrMalformed)
	}
	if c.signed {
		sig, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || !isLowerHex(sig, 64) {
			return fmt.Errorf("aws-chunked chunk without chunk-signature: %w", ErrSignatureMismatch)
		}
		c.chunkSig = sig
		c.chunkHash = sha256.New()
	}
	if size == 0 {
		if c.signed {
			if err := c.checkChunkSig(); err != nil {
				return err
			}
		}
		return c.finish()
	}
	if c.got+size > c.declared {
		return fmt.Errorf("aws-chunked body over decoded length %d: %w", c.declared, ErrIncompleteBody)
	}
	c.remaining = size
	return nil
}

func (c *chunkedReader) endChunk() error {
	l, err := c.src.line()
	if err != nil || l != "" {
		return fmt.Errorf("aws-chunked chunk not followed by CRLF: %w", ErrMalformed)
	}
	if c.signed {
		return c.checkChunkSig()
	}
	return nil
}

func (c *chunkedReader) checkChunkSig() error {
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.amzDate + "\n" + c.scope + "\n" + c.prevSig + "\n" +
		EmptySHA256 + "\n" + hex.EncodeToString(c.chunkHash.Sum(nil))
	want := Sign(c.key, sts)
	if !hmac.Equal([]byte(want), []byte(c.chunkSig)) {
		return fmt.Errorf("aws-chunked chunk signature: %w", ErrSignatureMismatch)
	}
	c.prevSig = c.chunkSig
	return nil
}

// maxTrailers bounds the trailer lines after the final chunk: SDKs send a
// checksum and, when signed, a signature.
const maxTrailers = 16

// finish reads the trailers after the final chunk and checks everything.
func (c *chunkedReader) finish() error {
	if c.got != c.declared {
		return fmt.Errorf("aws-chunked body has %d of %d bytes: %w", c.got, c.declared, ErrIncompleteBody)
	}
	trailers := map[string]string{}
	var canon strings.Builder
	var trailerSig string
	for n := 0; ; n++ {
		if n == maxTrailers {
			return fmt.Errorf("aws-chunked body has more than %d trailer lines: %w", maxTrailers, ErrMalformed)
		}
		l, err := c.src.line()
		if err == io.ErrUnexpectedEOF {
			break // some clients omit the final CRLF
		}
		if err != nil {
			return fmt.Errorf("aws-chunked trailer: %w", err)
		}
		if l == "" {
			break
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("aws-chunked trailer %.40q: %w", l, ErrMalformed)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if name == "x-amz-trailer-signature" {
			trailerSig = val
			continue
		}
		trailers[name] = val
		canon.WriteString(name + ":" + val + "\n")
	}
	if c.signed && len(trailers) > 0 {
		sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.amzDate + "\n" + c.scope + "\n" + c.prevSig + "\n" + hexSHA256([]byte(canon.String()))
		if !hmac.Equal([]byte(Sign(c.key, sts)), []byte(trailerSig)) {
			return fmt.Errorf("aws-chunked trailer signature: %w", ErrSignatureMismatch)
		}
	}
	for _, s := range c.trailerSums {
		v, ok := trailers[s.name]
		if !ok {
			return fmt.Errorf("declared trailer %s missing: %w", s.name, ErrMalformed)
		}
		s.want = v
		if !s.ok() {
			return fmt.Errorf("trailer %s: %w", s.name, ErrChecksumMismatch)
		}
	}
	return io.EOF
}
