// Package sniff identifies a file's real type from its first bytes.
//
// Uploads carry a filename and a Content-Type chosen by the browser; neither
// is trusted. The processor sniffs the downloaded object with [File] (or
// [Bytes] on its first [HeaderSize] bytes) and routes on the result: the
// [Type.MIME] picks the conversion pipeline, and a [Type] of [KindUnknown]
// means the job fails with unsupported_format without any converter running.
//
// Only the formats Herald converts are recognised. The checks are strict
// enough that every file accepted here is also claimed by the intended
// libvips or ffmpeg loader, so a file cannot be steered to a different
// (possibly unsafe) decoder by a misleading name.
package sniff

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// HeaderSize is how many leading bytes [Bytes] looks at; [File] reads this
// many.
const HeaderSize = 8192

// Kind is the broad class of a file.
type Kind string

// Kinds.
const (
	KindUnknown Kind = ""
	KindImage   Kind = "image"
	KindAudio   Kind = "audio"
)

// Type is the result of sniffing.
type Type struct {
	Kind Kind
	// MIME is the canonical media type ("image/jpeg"); empty when unknown.
	MIME string
	// Ext is the usual extension without the dot ("jpg"); empty when unknown.
	Ext string
}

// Known reports whether the type was recognised.
func (t Type) Known() bool { return t.Kind != KindUnknown }

// MIME types returned by this package.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	WebP = "image/webp"
	GIF  = "image/gif"
	TIFF = "image/tiff"
	PSD  = "image/vnd.adobe.photoshop"
	HEIC = "image/heic"
	HEIF = "image/heif"
	AVIF = "image/avif"
	PDF  = "application/pdf"
	SVG  = "image/svg+xml"
	WAV  = "audio/wav"
	FLAC = "audio/flac"
	AIFF = "audio/aiff"
	MP3  = "audio/mpeg"
	OGG  = "audio/ogg"
	M4A  = "audio/mp4"
)

var (
	unknown = Type{}
	types   = map[string]Type{
		JPEG: {KindImage, JPEG, "jpg"},
		PNG:  {KindImage, PNG, "png"},
		WebP: {KindImage, WebP, "webp"},
		GIF:  {KindImage, GIF, "gif"},
		TIFF: {KindImage, TIFF, "tif"},
		PSD:  {KindImage, PSD, "psd"},
		HEIC: {KindImage, HEIC, "heic"},
		HEIF: {KindImage, HEIF, "heif"},
		AVIF: {KindImage, AVIF, "avif"},
		PDF:  {KindImage, PDF, "pdf"},
		SVG:  {KindImage, SVG, "svg"},
		WAV:  {KindAudio, WAV, "wav"},
		FLAC: {KindAudio, FLAC, "flac"},
		AIFF: {KindAudio, AIFF, "aiff"},
		MP3:  {KindAudio, MP3, "mp3"},
		OGG:  {KindAudio, OGG, "ogg"},
		M4A:  {KindAudio, M4A, "m4a"},
	}
)

// ByMIME returns the Type for one of this package's MIME constants, and
// false for any other string.
func ByMIME(mime string) (Type, bool) {
	t, ok := types[mime]
	return t, ok
}

// File sniffs the file at path.
func File(path string) (Type, error) {
	f, err := os.Open(path)
	if err != nil {
		return unknown, fmt.Errorf("sniff %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, HeaderSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return unknown, fmt.Errorf("sniff %s: %w", path, err)
	}
	return Bytes(buf[:n]), nil
}

// Bytes sniffs the leading bytes of a file. Passing more than [HeaderSize]
// bytes is allowed; only the first HeaderSize are examined.
func Bytes(b []byte) Type {
	if len(b) > HeaderSize {
		b = b[:HeaderSize]
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return types[JPEG]
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return types[PNG]
	case len(b) >= 16 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" &&
		(string(b[12:16]) == "VP8 " || string(b[12:16]) == "VP8L" || string(b[12:16]) == "VP8X"):
		return types[WebP]
	case bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a")):
		return types[GIF]
	case bytes.HasPrefix(b, []byte("II*\x00")) || bytes.HasPrefix(b, []byte("MM\x00*")):
		return types[TIFF]
	case len(b) >= 26 && string(b[:4]) == "8BPS" && b[4] == 0 && b[5] == 1:
		// Version 1 only: version 2 is PSB (large documents), which the
		// ImageMagick coder vips uses would have to read in full.
		return types[PSD]
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return types[PDF]
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return types[WAV]
	case bytes.HasPrefix(b, []byte("fLaC")):
		return types[FLAC]
	case len(b) >= 12 && string(b[:4]) == "FORM" && (string(b[8:12]) == "AIFF" || string(b[8:12]) == "AIFC"):
		return types[AIFF]
	case bytes.HasPrefix(b, []byte("OggS\x00")):
		return ogg(b)
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		return isoBMFF(b)
	case bytes.HasPrefix(b, []byte("ID3")) && len(b) >= 10 && b[3] >= 2 && b[3] <= 4:
		return types[MP3]
	case mp3Frame(b):
		return types[MP3]
	case svg(b):
		return types[SVG]
	}
	return unknown
}
