package iotcore

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var exampleCreds = Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}

// TestPresignAWSExample is the presigned GET example of the S3 SigV4
// documentation ("Authenticating Requests: Using Query Parameters").
func TestPresignAWSExample(t *testing.T) {
	got, err := Presign(Request{
		Host: "examplebucket.s3.amazonaws.com", Path: "/test.txt", Service: "s3", Region: "us-east-1",
		Time: time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC), Expires: 86400 * time.Second, PayloadHash: "UNSIGNED-PAYLOAD",
	}, exampleCreds)
	if err != nil {
		t.Fatal(err)
	}
	want := "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
		"&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
		"&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
		"&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestPresignAgreesWithSDK signs IoT WebSocket URLs with the AWS SDK's own
// signer and compares signatures: without a token, and with a signed token.
// With TokenAfterSigning the signature is the one made without the token.
func TestPresignAgreesWithSDK(t *testing.T) {
	at := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	for _, token := range []string{"", "FQoGZXIvYXdzE+/token=="} {
		creds := exampleCreds
		creds.SessionToken = token
		req, _ := http.NewRequest(http.MethodGet, "https://abc123-ats.iot.eu-west-1.amazonaws.com/mqtt", nil)
		sdkURL, _, err := v4.NewSigner().PresignHTTP(context.Background(),
			aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey, SessionToken: token},
			req, emptyHash, "iotdevicegateway", "eu-west-1", at)
		if err != nil {
			t.Fatal(err)
		}
		mine, err := Presign(Request{Scheme: "wss", Host: "abc123-ats.iot.eu-west-1.amazonaws.com", Path: "/mqtt",
			Service: "iotdevicegateway", Region: "eu-west-1", Time: at}, creds)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sig(t, mine), sig(t, sdkURL); got != want {
			t.Errorf("token %q: got signature %s, SDK %s", token, got, want)
		}
		if token == "" {
			continue
		}
		after, _ := Presign(Request{Scheme: "wss", Host: "abc123-ats.iot.eu-west-1.amazonaws.com", Path: "/mqtt",
			Service: "iotdevicegateway", Region: "eu-west-1", Time: at, TokenAfterSigning: true}, creds)
		unsigned := exampleCreds
		noToken, _ := Presign(Request{Scheme: "wss", Host: "abc123-ats.iot.eu-west-1.amazonaws.com", Path: "/mqtt",
			Service: "iotdevicegateway", Region: "eu-west-1", Time: at}, unsigned)
		if want := noToken + "&X-Amz-Security-Token=" + url.QueryEscape(token); after != strings.ReplaceAll(want, "+", "%2B") {
			t.Errorf("token after signing:\n got  %s\n want %s", after, want)
		}
		if !strings.HasPrefix(after, "wss://") || !strings.Contains(after, "&X-Amz-Signature=") ||
			strings.Index(after, "X-Amz-Security-Token") < strings.Index(after, "X-Amz-Signature") {
			t.Errorf("token must follow the signature: %s", after)
		}
	}
}

func sig(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("X-Amz-Signature")
}

func TestPresignRefusesMissingInput(t *testing.T) {
	if _, err := Presign(Request{Host: "h", Service: "s"}, exampleCreds); err == nil {
		t.Error("no region: got nil error")
	}
	if _, err := Presign(Request{Host: "h", Service: "s", Region: "r"}, Credentials{}); err == nil {
		t.Error("no credentials: got nil error")
	}
}
