package sniff

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldgw/herald/internal/testkit"
)

func TestBytes(t *testing.T) {
	mp3Frame := []byte{0xFF, 0xFB, 0x90, 0x64} // MPEG-1 layer III 128k 44.1k
	mp3Two := append(append(append([]byte{}, mp3Frame...), make([]byte, 413)...), mp3Frame...)
	ftyp := func(major string, compat ...string) []byte {
		b := []byte{0, 0, 0, byte(16 + 4*len(compat)), 'f', 't', 'y', 'p'}
		b = append(b, major...)
		b = append(b, 0, 0, 0, 0)
		for _, c := range compat {
			b = append(b, c...)
		}
		return b
	}
	oggPage := func(packet string) []byte {
		b := append([]byte("OggS\x00\x02"), make([]byte, 20)...)
		b = append(b, 1, byte(len(packet)))
		return append(b, packet...)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"jpeg", []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF"), JPEG},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), PNG},
		{"webp lossy", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), WebP},
		{"webp riff other", []byte("RIFF\x24\x00\x00\x00WEBPXXXX"), ""},
		{"gif", []byte("GIF89a\x01\x00"), GIF},
		{"tiff le", []byte("II*\x00\x08\x00\x00\x00"), TIFF},
		{"tiff be", []byte("MM\x00*\x00\x00\x00\x08"), TIFF},
		{"psd", append([]byte("8BPS\x00\x01"), make([]byte, 20)...), PSD},
		{"psb refused", append([]byte("8BPS\x00\x02"), make([]byte, 20)...), ""},
		{"pdf", []byte("%PDF-1.7\n"), PDF},
		{"svg bare", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), SVG},
		{"svg decl comment doctype", []byte("<?xml version=\"1.0\"?>\n<!-- hi -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\" [<!ENTITY a \"b\">]>\n<svg width=\"1\">"), SVG},
		{"html with svg", []byte("<html><body><svg></svg></body></html>"), ""},
		{"svg too deep", append(append([]byte("<!--"), make([]byte, 1100)...), []byte("--><svg>")...), ""},
		{"svg with bom", []byte("\xEF\xBB\xBF<svg>"), ""},
		{"svgfoo", []byte("<svgfoo>"), ""},
		{"wav", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), WAV},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), FLAC},
		{"aiff", []byte("FORM\x00\x00\x00\x10AIFFCOMM"), AIFF},
		{"aifc", []byte("FORM\x00\x00\x00\x10AIFCFVER"), AIFF},
		{"mp3 id3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), MP3},
		{"mp3 one frame", mp3Frame, MP3},
		{"mp3 two frames", mp3Two, MP3},
		{"mp3 bad second frame", append(append(append([]byte{}, mp3Frame...), make([]byte, 413)...), 0, 0, 0, 0), ""},
		{"aac adts is not mp3", []byte{0xFF, 0xF1, 0x50, 0x80}, ""},
		{"ogg opus", oggPage("OpusHead\x01\x02"), OGG},
		{"ogg vorbis", oggPage("\x01vorbis\x00\x00"), OGG},
		{"ogg theora", oggPage("\x80theora\x00\x00"), ""},
		{"heic", ftyp("heic", "mif1", "heic"), HEIC},
		{"heif mif1", ftyp("mif1", "mif1"), HEIF},
		{"mif1 avif", ftyp("mif1", "avif"), AVIF},
		{"avif", ftyp("avif", "mif1"), AVIF},
		{"m4a", ftyp("M4A ", "M4A ", "mp42", "isom"), M4A},
		{"isom audio", append(ftyp("isom", "iso2"), []byte("....hdlr\x00\x00\x00\x00\x00\x00\x00\x00soun")...), M4A},
		{"isom video", append(ftyp("isom", "iso2"), []byte("hdlr....vide....hdlr....soun")...), ""},
		{"isom unknown", ftyp("isom", "iso2"), ""},
		{"qt", ftyp("qt  "), ""},
		{"short ftyp", []byte("\x00\x00\x00\x08ftypheic"), ""},
		{"empty", nil, ""},
		{"text", []byte("hello world"), ""},
		{"mvg", []byte("push graphic-context\nviewbox 0 0 640 480\nfill 'url(https://127.0.0.1/x.jpg\"|ls \"-la)'\npop graphic-context\n"), ""},
		{"zip", []byte("PK\x03\x04"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Bytes(tt.in)
			if got.MIME != tt.want {
				t.Fatalf("Bytes() = %+v, want MIME %q", got, tt.want)
			}
			if want, _ := ByMIME(tt.want); got != want {
				t.Errorf("Bytes() = %+v, want %+v", got, want)
			}
		})
	}
}

// TestFileReal sniffs files written by the real encoders Herald is fed by.
func TestFileReal(t *testing.T) {
	testkit.RequireTools(t, "vips", "ffmpeg")
	dir := t.TempDir()
	images := map[string]string{
		"a.jpg": JPEG, "a.png": PNG, "a.webp": WebP, "a.gif": GIF, "a.tif": TIFF,
		"a.heic": HEIC, "a.avif": AVIF,
	}
	for name := range images {
		testkit.Image(t, dir, name, 32, 24)
	}
	audio := map[string]string{
		"a.wav": WAV, "a.flac": FLAC, "a.aiff": AIFF, "a.mp3": MP3, "a.ogg": OGG, "a.opus": OGG, "a.m4a": M4A,
	}
	for name := range audio {
		testkit.Audio(t, dir, name, 0.2)
	}
	want := map[string]string{}
	for k, v := range images {
		want[k] = v
	}
	for k, v := range audio {
		want[k] = v
	}
	for name, mime := range want {
		// A misleading extension must not matter.
		lying := filepath.Join(dir, name+".txt")
		if err := os.Rename(filepath.Join(dir, name), lying); err != nil {
			t.Fatal(err)
		}
		got, err := File(lying)
		if err != nil {
			t.Fatal(err)
		}
		if got.MIME != mime {
			t.Errorf("File(%s) = %+v, want %s", name, got, mime)
		}
	}
}

func TestFileMissing(t *testing.T) {
	if _, err := File(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("File(missing) err = %v, want not-exist", err)
	}
}

func FuzzBytes(f *testing.F) {
	for _, s := range []string{
		"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF\x00\x00\x00\x00WEBPVP8L", "GIF89a", "II*\x00", "MM\x00*",
		"8BPS\x00\x01", "%PDF-", "<?xml version=\"1.0\"?><!DOCTYPE svg [<!ENTITY x \"y\">]><svg>", "RIFF\x00\x00\x00\x00WAVE",
		"fLaC", "FORM\x00\x00\x00\x00AIFF", "ID3\x03", "\xFF\xFB\x90\x64", "OggS\x00\x02",
		"\x00\x00\x00\x18ftypheicmif1heic", "\x00\x00\x00\x14ftypisom\x00\x00\x00\x00soun",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Bytes(b)
		if got.Known() != (got.MIME != "") {
			t.Fatalf("inconsistent type %+v", got)
		}
		if got.Known() {
			if want, ok := ByMIME(got.MIME); !ok || want != got {
				t.Fatalf("Bytes() = %+v not in the table", got)
			}
		}
	})
}
