package sniff

import (
	"bytes"
	"encoding/binary"
)

// ogg accepts an Ogg stream whose first packet starts an audio codec. Ogg
// also carries video (Theora), which Herald does not convert.
func ogg(b []byte) Type {
	if len(b) < 27 {
		return unknown
	}
	nseg := int(b[26])
	start := 27 + nseg
	if len(b) < start+8 {
		return unknown
	}
	p := b[start:]
	for _, magic := range []string{"OpusHead", "\x01vorbis", "\x7fFLAC", "Speex   "} {
		if bytes.HasPrefix(p, []byte(magic)) {
			return types[OGG]
		}
	}
	return unknown
}

// isoBMFF handles files that start with an ftyp box: HEIF/HEIC/AVIF images
// and MPEG-4 audio. Brands are from ISO/IEC 23008-12 (HEIF), the AV1 image
// file format spec, and Apple's M4A/M4B.
func isoBMFF(b []byte) Type {
	size := int(binary.BigEndian.Uint32(b[:4]))
	if size < 16 || size > len(b) {
		// A brand list cut off by the sniff buffer is still usable up to
		// what we have, but a box smaller than its own header is not ftyp.
		if size < 16 {
			return unknown
		}
		size = len(b)
	}
	brands := []string{string(b[8:12])}
	for i := 16; i+4 <= size; i += 4 {
		brands = append(brands, string(b[i:i+4]))
	}
	has := func(want ...string) bool {
		for _, br := range brands {
			for _, w := range want {
				if br == w {
					return true
				}
			}
		}
		return false
	}
	major := brands[0]
	switch {
	case major == "avif" || major == "avis":
		return types[AVIF]
	case major == "heic" || major == "heix" || major == "heim" || major == "heis" || major == "hevc" || major == "hevx":
		return types[HEIC]
	case major == "M4A " || major == "M4B ":
		return types[M4A]
	case major == "mif1" || major == "msf1":
		switch {
		case has("avif", "avis"):
			return types[AVIF]
		case has("heic", "heix", "hevc", "hevx"):
			return types[HEIC]
		}
		return types[HEIF]
	case has("M4A ", "M4B "):
		return types[M4A]
	case has("isom", "iso2", "mp41", "mp42", "dash"):
		// Generic MP4: audio only if the track handlers we can see are
		// sound. The moov box may sit after the media data, beyond the
		// sniff buffer; then we cannot tell and refuse.
		if bytes.Contains(b, []byte("vide")) {
			return unknown
		}
		if bytes.Contains(b, []byte("soun")) {
			return types[M4A]
		}
	}
	return unknown
}

// mp3Frame reports whether b starts with an MPEG audio layer III frame
// header, and, when the buffer reaches that far, a second one right after
// the first frame. The second check keeps random bytes that happen to start
// 0xFFE from being called MP3.
func mp3Frame(b []byte) bool {
	n, ok := mp3FrameLen(b)
	if !ok {
		return false
	}
	if len(b) < n+4 {
		return true
	}
	_, ok = mp3FrameLen(b[n:])
	return ok
}

var (
	// Layer III bitrates in kbit/s by [MPEG-1 or not][index].
	mp3Bitrates = [2][16]int{
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},
	}
	// Sample rates by version bits (0 = 2.5, 2 = 2, 3 = 1) and index.
	mp3Rates = [4][3]int{
		{11025, 12000, 8000},
		{0, 0, 0},
		{22050, 24000, 16000},
		{44100, 48000, 32000},
	}
)

func mp3FrameLen(b []byte) (int, bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return 0, false
	}
	version := (b[1] >> 3) & 3
	layer := (b[1] >> 1) & 3
	brIdx := b[2] >> 4
	srIdx := (b[2] >> 2) & 3
	if version == 1 || layer != 1 || brIdx == 0 || brIdx == 15 || srIdx == 3 {
		return 0, false
	}
	mpeg1 := version == 3
	row := 1
	if mpeg1 {
		row = 0
	}
	bitrate := mp3Bitrates[row][brIdx] * 1000
	rate := mp3Rates[version][srIdx]
	pad := int(b[2]>>1) & 1
	coef := 72
	if mpeg1 {
		coef = 144
	}
	return coef*bitrate/rate + pad, true
}

// svg mirrors what libvips' svgload claims (first 24 bytes plain ASCII,
// "<svg" within the first 1000) and also requires that the first element,
// after an optional XML declaration, comments, processing instructions and
// a DOCTYPE, is <svg>. A file passing this is never handed to another
// loader by libvips.
func svg(b []byte) bool {
	const vipsWindow = 1000
	head := b
	if len(head) > 24 {
		head = head[:24]
	}
	for _, c := range head {
		if c < 0x09 || c > 0x7F {
			return false
		}
	}
	win := b
	if len(win) > vipsWindow {
		win = win[:vipsWindow]
	}
	if !bytes.Contains(bytes.ToLower(win), []byte("<svg")) {
		return false
	}
	rest := win
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			i := bytes.Index(rest, []byte("?>"))
			if i < 0 {
				return false
			}
			rest = rest[i+2:]
		case bytes.HasPrefix(rest, []byte("<!--")):
			i := bytes.Index(rest[4:], []byte("-->"))
			if i < 0 {
				return false
			}
			rest = rest[4+i+3:]
		case bytes.HasPrefix(rest, []byte("<!DOCTYPE")) || bytes.HasPrefix(rest, []byte("<!doctype")):
			i := doctypeEnd(rest)
			if i < 0 {
				return false
			}
			rest = rest[i:]
		case bytes.HasPrefix(rest, []byte("<svg")):
			if len(rest) == 4 {
				return false
			}
			switch rest[4] {
			case ' ', '\t', '\r', '\n', '>', '/':
				return true
			}
			return false
		default:
			return false
		}
	}
}

// doctypeEnd returns the index just past a DOCTYPE declaration, which may
// hold an internal subset in brackets, or -1.
func doctypeEnd(b []byte) int {
	depth := 0
	for i, c := range b {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case '>':
			if depth <= 0 {
				return i + 1
			}
		}
	}
	return -1
}
