package processor

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldgw/herald/internal/testkit"
	"github.com/heraldgw/herald/job"
)

// TestGrantHoldsUploadToDeclaredSize sends browser POSTs to real localaws
// with grants for a declared size: only a file of exactly that size is
// stored, so a grant asked for a small file cannot carry the app's whole
// upload limit.
func TestGrantHoldsUploadToDeclaredSize(t *testing.T) {
	e := newEnv(t)
	png := testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "a.png", 32, 32))
	size := int64(len(png))
	for _, tt := range []struct {
		name string
		data []byte
		want int
		code string
	}{
		{"declared size", png, http.StatusNoContent, ""},
		{"one byte more", append(append([]byte(nil), png...), 0), http.StatusBadRequest, "EntityTooLarge"},
		{"one byte less", png[:size-1], http.StatusBadRequest, "EntityTooSmall"},
		{"the app's whole limit", make([]byte, 1<<20), http.StatusBadRequest, "EntityTooLarge"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, err := e.intake.GrantUpload(context.Background(), job.UploadRequest{App: testApp, Channel: e.channel,
				Filename: "a.png", ContentType: "image/png", Size: size, MaxBytes: 200 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if g.MaxBytes != size {
				t.Errorf("grant maxBytes %d, want the declared %d", g.MaxBytes, size)
			}
			resp, body := testkit.Upload{URL: g.URL, Fields: g.Fields, Filename: "a.png", Data: tt.data}.MustPost(t)
			if got := resp.StatusCode; got != tt.want || !strings.Contains(string(body), tt.code) {
				t.Errorf("POST %d bytes with a grant for %d: %d %s, want %d %s", len(tt.data), size, got, body, tt.want, tt.code)
			}
		})
	}
}
