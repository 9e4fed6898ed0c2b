package sqs

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// benchCycle measures send -> receive -> delete through the real SDK over
// loopback HTTP, with the default fsync-every-commit policy. One iteration
// sends `batch` messages in one call, receives up to `batch` and deletes
// what it received in one call; 8 client goroutines share the queue.
func benchCycle(b *testing.B, batch int) {
	_, _, c := startTestServer(b)
	url := createQueue(b, c, "bench", nil)
	ctx := context.Background()
	var done atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		entries := make([]types.SendMessageBatchRequestEntry, batch)
		for i := range entries {
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("m", i)), MessageBody: aws.String(fmt.Sprintf(`{"event":"bench","n":%d}`, i))}
		}
		for pb.Next() {
			if batch == 1 {
				if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: entries[0].MessageBody}); err != nil {
					b.Error(err)
					return
				}
			} else if _, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &url, Entries: entries}); err != nil {
				b.Error(err)
				return
			}
			out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: int32(batch), WaitTimeSeconds: 1})
			if err != nil {
				b.Error(err)
				return
			}
			switch {
			case len(out.Messages) == 0:
			case batch == 1:
				if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
					b.Error(err)
					return
				}
			default:
				del := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					del[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("d", i)), ReceiptHandle: m.ReceiptHandle}
				}
				if _, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: &url, Entries: del}); err != nil {
					b.Error(err)
					return
				}
			}
			done.Add(int64(len(out.Messages)))
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(done.Load())/elapsed.Seconds(), "msgs/s")
}

// BenchmarkSendReceiveDeleteBatched: 10 messages per call.
func BenchmarkSendReceiveDeleteBatched(b *testing.B) { benchCycle(b, 10) }

// BenchmarkSendReceiveDeleteSingle: one message per call.
func BenchmarkSendReceiveDeleteSingle(b *testing.B) { benchCycle(b, 1) }

// BenchmarkLongPollWake measures the time from the start of a SendMessage
// call to the return of a ReceiveMessage that was already long-polling,
// both through the SDK; it reports p50 and p99. With fsync the time includes
// the durable commit of the send (a message is delivered only once
// durable); nosync isolates the wake-up path from the disk.
func BenchmarkLongPollWake(b *testing.B) {
	b.Run("fsync", func(b *testing.B) { benchWake(b, SyncEveryCommit) })
	b.Run("nosync", func(b *testing.B) { benchWake(b, SyncNone) })
}

func benchWake(b *testing.B, policy SyncPolicy) {
	_, _, c := startTestServerWith(b, policy)
	url := createQueue(b, c, "wake", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan time.Time)
	go func() {
		for ctx.Err() == nil {
			out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 20})
			if err != nil || len(out.Messages) == 0 {
				continue
			}
			at := time.Now()
			if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil && ctx.Err() == nil {
				b.Error(err)
			}
			select {
			case received <- at:
			case <-ctx.Done():
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		time.Sleep(2 * time.Millisecond) // let the receiver get back into its long poll
		start := time.Now()
		if _, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("wake")}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-received).Sub(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
