package job

import "testing"

func TestLimitsAllowsType(t *testing.T) {
	tests := []struct {
		allowed []string
		ct      string
		want    bool
	}{
		{nil, "application/pdf", true},
		{[]string{"image/*"}, "image/tiff", true},
		{[]string{"image/*"}, "audio/wav", false},
		{[]string{"audio/wav", "image/png"}, "audio/wav", true},
		{[]string{"Audio/WAV"}, "audio/wav", true},
		{[]string{"audio/wav"}, "audio/flac", false},
		{[]string{"audio/wav"}, "", false},
	}
	for _, tt := range tests {
		l := Limits{AllowedTypes: tt.allowed}
		if got := l.AllowsType(tt.ct); got != tt.want {
			t.Errorf("%v allows %q: got %v, want %v", tt.allowed, tt.ct, got, tt.want)
		}
	}
}
