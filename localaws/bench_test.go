package localaws

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/internal/testkit"
)

// benchServer starts localaws on a real loopback listener.
func benchServer(b *testing.B) *s3.Client {
	b.Helper()
	srv, err := New(Config{Notify: heraldNotify, Addr: "127.0.0.1:0", DataDir: b.TempDir(), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		b.Fatal(err)
	}
	testkit.Go(b, srv.Run)
	return s3Client(srv.URL(), "test", "test", nil)
}

// BenchmarkS3PutObject1MiB measures PutObject of 1 MiB bodies through the
// SDK (SigV4, CRC32 and SHA-256 payload hashing on both sides, fsync per
// object). MB/s is reported by SetBytes; ops/s = 1e9 / ns/op.
func BenchmarkS3PutObject1MiB(b *testing.B) {
	c := benchServer(b)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	ctx := context.Background()
	b.SetBytes(int64(len(body)))
	i := 0
	for b.Loop() {
		i++
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(fmt.Sprintf("bench/%d", i%64)), Body: bytes.NewReader(body)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkS3GetObject1MiB measures GetObject of a 1 MiB object.
func BenchmarkS3GetObject1MiB(b *testing.B) {
	c := benchServer(b)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("bench/get"), Body: bytes.NewReader(body)}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("herald"), Key: aws.String("bench/get")})
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if n != int64(len(body)) {
			b.Fatalf("read %d bytes", n)
		}
	}
}

// BenchmarkS3PutObject1MiBParallel runs PutObject from GOMAXPROCS clients.
func BenchmarkS3PutObject1MiBParallel(b *testing.B) {
	c := benchServer(b)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			i++
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(fmt.Sprintf("bench/p%p-%d", pb, i%64)), Body: bytes.NewReader(body)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
