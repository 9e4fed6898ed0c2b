package localaws

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// startListening runs a Server on a real loopback listener, where the HTTP
// server's own timeouts apply.
func startListening(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quietLogger()}
	mutate(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

// closedWithin reports how long the server took to close c (reading and
// discarding what it sends), or fails after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// TestSlowDripUploadIsCut: a presigned PUT whose body arrives one byte every
// 50 ms is cut once it falls behind BodyMinRate after BodyGrace, rather
// than holding the connection for as long as the client drips; nothing is
// stored. A body at full speed on the same server is stored.
func TestSlowDripUploadIsCut(t *testing.T) {
	srv := startListening(t, func(c *Config) { c.BodyGrace = 500 * time.Millisecond; c.BodyMinRate = 1000 })
	client := s3Client(srv.URL(), "test", "test", nil)
	ctx := t.Context()
	put, err := s3.NewPresignClient(client).PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/drip")})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(put.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 100 // 5 s at one byte per 50 ms
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", u.RequestURI(), u.Host, size)
	for k, vs := range put.SignedHeader {
		if !strings.EqualFold(k, "Host") {
			fmt.Fprintf(&hdr, "%s: %s\r\n", k, vs[0])
		}
	}
	hdr.WriteString("\r\n")
	if _, err := c.Write(hdr.Bytes()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for range size {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	took := closedWithin(t, c, 4*time.Second)
	t.Logf("dripping upload cut after %v", took)
	if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/drip")}); err == nil {
		t.Error("the cut upload was stored")
	}

	body := bytes.Repeat([]byte("y"), 1<<20)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String("uploads/fast"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("upload at full speed: %v", err)
	}
}

// TestIdleConnectionClosed: a keep-alive connection left idle after a
// request is closed after IdleTimeout.
func TestIdleConnectionClosed(t *testing.T) {
	srv := startListening(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	u, _ := url.Parse(srv.URL())
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /herald HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := closedWithin(t, c, 3*time.Second)
	t.Logf("idle connection closed after %v", took)
}
