package processor

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/heraldgw/herald/bridge"
	"github.com/heraldgw/herald/processor/convert"
)

// A heartbeat that is not well inside the visibility timeout renews a
// message only after it has reappeared in the queue, so a second
// processor runs the same step at the same time: New must refuse it.
func TestConfigHeartbeatInsideVisibility(t *testing.T) {
	// New makes no calls, so clients that point nowhere do.
	s3c := s3.New(s3.Options{Region: "us-east-1"})
	base := Config{S3: s3c, Presigner: s3.NewPresignClient(s3c), Queue: sqs.New(sqs.Options{Region: "us-east-1"}), QueueURL: "q", Bucket: "b",
		Converter: (*convert.Engine)(nil), Publisher: bridge.NewEmbedded(nil)}
	tests := []struct {
		name                  string
		visibility, heartbeat time.Duration
		wantErr               bool
	}{
		{"defaults", 0, 0, false},
		{"third", 30 * time.Second, 10 * time.Second, false},
		{"half", 30 * time.Second, 15 * time.Second, false},
		{"equal", 30 * time.Second, 30 * time.Second, true},
		{"longer", 30 * time.Second, 45 * time.Second, true},
		{"longer than default visibility", 0, 2 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.Visibility, c.Heartbeat = tt.visibility, tt.heartbeat
			_, err := New(c)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("New with visibility %s, heartbeat %s: got err %v, want error %v", tt.visibility, tt.heartbeat, err, tt.wantErr)
			}
		})
	}
}
