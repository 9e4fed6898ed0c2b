package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	exampleKey    = "AKIDEXAMPLE"
	exampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func exampleVerifier(now time.Time) *Verifier {
	return NewVerifier(Config{Credentials: map[string]string{exampleKey: exampleSecret}, Now: func() time.Time { return now }})
}

// TestAWSSuite checks requests from AWS's published SigV4 test suite
// (aws-sig-v4-test-suite) with their published signatures.
func TestAWSSuite(t *testing.T) {
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	cases := []struct {
		name, method, target, body, sig string
		extra                           map[string]string
	}{
		{name: "get-vanilla", method: "GET", target: "/", sig: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{name: "get-vanilla-query-order-key-case", method: "GET", target: "/?Param2=value2&Param1=value1", sig: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{name: "post-vanilla", method: "POST", target: "/", sig: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			r.Host = "example.amazonaws.com"
			r.Header.Set("X-Amz-Date", "20150830T123600Z")
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+tc.sig)
			res, err := exampleVerifier(now).Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got, want := res.Credential.Service, "service"; got != want {
				t.Errorf("service: got %q want %q", got, want)
			}
			// One flipped signature digit must fail.
			bad := tc.sig[:63] + string("01"[(tc.sig[63]-'0'+1)%2])
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="+bad)
			if _, err := exampleVerifier(now).Verify(r); !errors.Is(err, ErrSignatureMismatch) {
				t.Errorf("tampered: got %v want ErrSignatureMismatch", err)
			}
		})
	}
}

func TestCanonicalRequestOfSuiteExample(t *testing.T) {
	r := httptest.NewRequest("GET", "/?Param2=value2&Param1=value1", nil)
	r.Host = "example.amazonaws.com"
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	got := CanonicalRequest(r, "/", []string{"host", "x-amz-date"}, EmptySHA256)
	want := "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" + EmptySHA256
	if got != want {
		t.Fatalf("canonical request:\ngot  %q\nwant %q", got, want)
	}
	c := Credential{AccessKey: exampleKey, Date: "20150830", Region: "us-east-1", Service: "service"}
	if got, want := StringToSign("20150830T123600Z", c, got), "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"; got != want {
		t.Fatalf("string to sign:\ngot  %q\nwant %q", got, want)
	}
}

func TestVerifyErrors(t *testing.T) {
	now := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	good := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	cases := []struct {
		name, auth, date string
		now              time.Time
		want             error
	}{
		{"unsigned", "", "20150830T123600Z", now, ErrNotSigned},
		{"unknown key", strings.Replace(good, "AKIDEXAMPLE", "OTHER", 1), "20150830T123600Z", now, ErrUnknownAccessKey},
		{"skewed", good, "20150830T123600Z", now.Add(time.Hour), ErrTimeSkewed},
		{"date outside scope", good, "20150831T123600Z", now.Add(24 * time.Hour), ErrMalformed},
		{"no date", good, "", now, ErrMalformed},
		{"garbage", "AWS4-HMAC-SHA256 nonsense", "20150830T123600Z", now, ErrMalformed},
		{"other algorithm", "AWS4-HMAC-SHA512 Credential=x", "20150830T123600Z", now, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = "example.amazonaws.com"
			if tc.date != "" {
				r.Header.Set("X-Amz-Date", tc.date)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			_, err := exampleVerifier(tc.now).Verify(r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	a, err := ParseAuthorization("AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/sqs/aws4_request,SignedHeaders=content-type;host;x-amz-date,Signature=" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Credential.Service, "sqs"; got != want {
		t.Errorf("service: got %q want %q", got, want)
	}
	if got, want := strings.Join(a.SignedHeaders, ";"), "content-type;host;x-amz-date"; got != want {
		t.Errorf("signed headers: got %q want %q", got, want)
	}
}

// TestPresignedBySDK signs URLs with the real SDK signer and verifies them.
func TestPresignedBySDK(t *testing.T) {
	now := time.Now().UTC()
	v := NewVerifier(Config{Credentials: map[string]string{"test": "test"}})
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	cases := []struct {
		name    string
		signAt  time.Time
		expires string
		tamper  bool
		want    error
	}{
		{name: "fresh", signAt: now, expires: "900"},
		{name: "expired", signAt: now.Add(-2 * time.Hour), expires: "60", want: ErrExpired},
		{name: "tampered path", signAt: now, expires: "900", tamper: true, want: ErrSignatureMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://127.0.0.1:4566/herald/a%20b/c.txt?X-Amz-Expires="+tc.expires, nil)
			u, _, err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).PresignHTTP(context.Background(), creds, req, UnsignedPayload, "s3", "us-east-1", tc.signAt)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tamper {
				u = strings.Replace(u, "c.txt", "d.txt", 1)
			}
			r := httptest.NewRequest("GET", u, nil)
			_, err = v.Verify(r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
}

// chunk builds one aws-chunked chunk, signed when ss is non-nil.
func chunk(t *testing.T, ss *v4.StreamSigner, at time.Time, data []byte) string {
	t.Helper()
	if ss == nil {
		return strconv.FormatInt(int64(len(data)), 16) + "\r\n" + string(data) + "\r\n"
	}
	sig, err := ss.GetSignature(context.Background(), nil, data, at)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(int64(len(data)), 16) + ";chunk-signature=" + hex.EncodeToString(sig) + "\r\n" + string(data) + "\r\n"
}

func TestChunkedBodies(t *testing.T) {
	at := time.Now().UTC().Truncate(time.Second)
	v := NewVerifier(Config{Credentials: map[string]string{"test": "test"}})
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 9000) // 144000 bytes, three chunks
	crc := crc32.ChecksumIEEE(payload)
	crcB64 := base64.StdEncoding.EncodeToString([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})

	cases := []struct {
		name    string
		mode    string
		corrupt func(string) string
		trailer string
		want    error
	}{
		{name: "unsigned trailer", mode: StreamingUnsignedPayloadTrailer, trailer: crcB64},
		{name: "unsigned trailer bad crc", mode: StreamingUnsignedPayloadTrailer, trailer: "AAAAAA==", want: ErrChecksumMismatch},
		{name: "signed", mode: StreamingSignedPayload},
		{name: "signed tampered data", mode: StreamingSignedPayload, corrupt: func(s string) string { return strings.Replace(s, "0123", "X123", 1) }, want: ErrSignatureMismatch},
		{name: "truncated", mode: StreamingUnsignedPayloadTrailer, trailer: crcB64, corrupt: func(s string) string { return s[:len(s)/2] }, want: ErrIncompleteBody},
		{name: "endless trailers", mode: StreamingUnsignedPayloadTrailer, trailer: crcB64 + strings.Repeat("\r\nx-amz-meta-pad:x", 100), want: ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", "http://127.0.0.1:4566/herald/k", nil)
			req.Header.Set("X-Amz-Content-Sha256", tc.mode)
			req.Header.Set("Content-Encoding", "aws-chunked")
			req.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(payload)))
			if tc.mode == StreamingUnsignedPayloadTrailer {
				req.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
			}
			if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(), creds, req, tc.mode, "s3", "us-east-1", at); err != nil {
				t.Fatal(err)
			}
			var ss *v4.StreamSigner
			if tc.mode == StreamingSignedPayload {
				seed := req.Header.Get("Authorization")
				seed = seed[strings.LastIndex(seed, "=")+1:]
				seedBytes, _ := hex.DecodeString(seed)
				ss = v4.NewStreamSigner(creds, "s3", "us-east-1", seedBytes)
			}
			var b strings.Builder
			for off := 0; off < len(payload); off += 65536 {
				end := min(off+65536, len(payload))
				b.WriteString(chunk(t, ss, at, payload[off:end]))
			}
			if ss != nil {
				b.WriteString(chunk(t, ss, at, nil) + "\r\n")
			} else {
				b.WriteString("0\r\nx-amz-checksum-crc32:" + tc.trailer + "\r\n\r\n")
			}
			wire := b.String()
			if tc.corrupt != nil {
				wire = tc.corrupt(wire)
			}
			r := httptest.NewRequest("PUT", "http://127.0.0.1:4566/herald/k", strings.NewReader(wire))
			r.Header = req.Header.Clone()
			res, err := v.Verify(r)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			body, size, err := res.Body(r)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(payload)) {
				t.Errorf("size: got %d want %d", size, len(payload))
			}
			got, err := io.ReadAll(body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read: got %v want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, payload) {
				t.Fatalf("decoded body differs: %d bytes vs %d", len(got), len(payload))
			}
		})
	}
}

func TestPlainBodyHashChecked(t *testing.T) {
	v := NewVerifier(Config{Credentials: map[string]string{"test": "test"}})
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	for _, tc := range []struct {
		name, sent string
		want       error
	}{{"same", "hello", nil}, {"changed", "hellO", ErrContentSHA256Mismatch}} {
		t.Run(tc.name, func(t *testing.T) {
			sum := sha256.Sum256([]byte("hello"))
			req, _ := http.NewRequest("PUT", "http://127.0.0.1:4566/b/k", nil)
			req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "s3", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("PUT", "http://127.0.0.1:4566/b/k", strings.NewReader(tc.sent))
			r.Header = req.Header.Clone()
			res, err := v.Verify(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _, _ := res.Body(r)
			_, err = io.ReadAll(body)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e")
	f.Add("AWS4-HMAC-SHA256")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if a.Credential.AccessKey == "" || len(a.Signature) != 64 || len(a.SignedHeaders) == 0 {
			t.Fatalf("accepted incomplete authorization %+v", a)
		}
		if got := a.Credential.String(); !strings.Contains(h, got) {
			t.Fatalf("credential %q not in header", got)
		}
	})
}

func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"), int64(5))
	f.Add([]byte("ffffffffffffffff\r\n"), int64(3))
	f.Fuzz(func(t *testing.T, wire []byte, declared int64) {
		r := httptest.NewRequest("PUT", "/b/k", bytes.NewReader(wire))
		r.Header.Set("X-Amz-Decoded-Content-Length", fmt.Sprint(declared))
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		res := &Result{PayloadHash: StreamingUnsignedPayloadTrailer}
		body, _, err := res.Body(r)
		if err != nil {
			return
		}
		got, err := io.ReadAll(io.LimitReader(body, 1<<20))
		if err == nil && int64(len(got)) != declared {
			t.Fatalf("clean EOF after %d bytes, declared %d", len(got), declared)
		}
	})
}
