package job

import (
	"strings"
	"testing"

	"github.com/heraldgw/herald/topic"
)

func TestSafeFilename(t *testing.T) {
	tests := []struct{ in, want string }{
		{"photo.jpg", "photo.jpg"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\My Photo (1).png`, "My_Photo__1_.png"},
		{"..", "file"},
		{"...hidden", "hidden"},
		{"", "file"},
		{"日本.png", "__.png"},
		{"a/b/", "file"},
		{"x[0].tif", "x_0_.tif"},
		{strings.Repeat("a", 300) + ".jpeg", strings.Repeat("a", 95) + ".jpeg"},
	}
	for _, tt := range tests {
		if got := SafeFilename(tt.in); got != tt.want {
			t.Errorf("SafeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"photo.jpg", "../x", "..", "a\x00b", strings.Repeat("é", 200), "/", `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeFilename(in)
		if got == "" || got == "." || got == ".." || len(got) > MaxFilename || got[0] == '.' {
			t.Fatalf("SafeFilename(%q) = %q", in, got)
		}
		for _, c := range []byte(got) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				t.Fatalf("SafeFilename(%q) = %q has %q", in, got, c)
			}
		}
		if SafeFilename(got) != got {
			t.Fatalf("not idempotent: %q → %q → %q", in, got, SafeFilename(got))
		}
	})
}

func TestParseUploadKey(t *testing.T) {
	tests := []struct {
		key     string
		want    Key
		file    string
		wantErr bool
	}{
		{key: "uploads/demo/ch_1/job-1/photo.jpg", want: Key{"demo", "ch_1", "job-1"}, file: "photo.jpg"},
		{key: "uploads/demo/ch/job/my photo.jpg", want: Key{"demo", "ch", "job"}, file: "my photo.jpg"},
		{key: "uploads/demo/ch/job/", wantErr: true},
		{key: "uploads/demo/ch/photo.jpg", wantErr: true},
		{key: "uploads/demo/ch/job/a/b.jpg", wantErr: true},
		{key: "uploads/de mo/ch/job/a.jpg", wantErr: true},
		{key: "uploads/demo/+/job/a.jpg", wantErr: true},
		{key: "other/demo/ch/job/a.jpg", wantErr: true},
	}
	for _, tt := range tests {
		k, file, err := ParseUploadKey(tt.key)
		if (err != nil) != tt.wantErr || err == nil && (k != tt.want || file != tt.file) {
			t.Errorf("ParseUploadKey(%q) = %+v, %q, %v; want %+v, %q, err %v", tt.key, k, file, err, tt.want, tt.file, tt.wantErr)
		}
	}
}

func FuzzParseUploadKey(f *testing.F) {
	for _, s := range []string{"uploads/demo/ch/job/a.jpg", "uploads/a/b/c/", "uploads////", "uploads/$/#/+/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k, file, err := ParseUploadKey(key)
		if err != nil {
			return
		}
		if k.UploadKey(file) != key {
			t.Fatalf("round trip %q → %q", key, k.UploadKey(file))
		}
		if err := topic.ValidName(topic.Job(k.App, k.Channel, k.JobID)); err != nil {
			t.Fatalf("key %q gives an invalid topic: %v", key, err)
		}
	})
}

func TestParseManifestKey(t *testing.T) {
	tests := []struct {
		key     string
		want    Key
		wantErr bool
	}{
		{key: "converted/demo/ch/job/manifest.json", want: Key{"demo", "ch", "job"}},
		{key: "converted/demo/ch/job/other.json", wantErr: true},
		{key: "converted/demo/ch/manifest.json", wantErr: true},
		{key: "converted/demo/c h/job/manifest.json", wantErr: true},
		{key: "uploads/demo/ch/job/manifest.json", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseManifestKey(tt.key)
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("ParseManifestKey(%q) = %+v, %v; want %+v, err %v", tt.key, got, err, tt.want, tt.wantErr)
		}
		if err == nil && !IsManifestKey(tt.key) {
			t.Errorf("IsManifestKey(%q) = false for a parsed manifest key", tt.key)
		}
	}
}

func TestOwner(t *testing.T) {
	tests := []struct {
		key, app string
		ok       bool
	}{
		{"uploads/demo/ch/job/a.jpg", "demo", true},
		{"converted/other/ch/job/a.webp", "other", true},
		{"uploads/", "", true},
		{"herald/jobs/demo/ch/job/final.json", "", false},
		{"photos/a.jpg", "", false},
	}
	for _, tt := range tests {
		app, ok := Owner(tt.key)
		if app != tt.app || ok != tt.ok {
			t.Errorf("Owner(%q) = %q, %v; want %q, %v", tt.key, app, ok, tt.app, tt.ok)
		}
	}
}

func TestNewID(t *testing.T) {
	a, err := NewID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewID()
	if len(a) != 22 || a == b || !topic.ValidSegment(a) {
		t.Errorf("NewID() = %q, %q; want two distinct 22-character topic segments", a, b)
	}
}
