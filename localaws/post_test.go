package localaws

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/heraldgw/herald/internal/testkit"
)

func TestBrowserPostUpload(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	ps := s3.NewPresignClient(e.s3)
	const key = "uploads/demo/chan/job1/photo.png"
	presign := func(t *testing.T, key string, expires time.Duration, extra ...any) *s3.PresignedPostRequest {
		t.Helper()
		conds := append([]any{[]any{"content-length-range", 1, 1024}, []any{"eq", "$Content-Type", "image/png"}}, extra...)
		req, err := ps.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(key)}, func(o *s3.PresignPostOptions) {
			o.Expires = expires
			o.Conditions = conds
		})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	png := bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 64)
	cases := []struct {
		name       string
		key        string
		expires    time.Duration
		policyMore []any
		mutate     func(map[string]string)
		extra      [][2]string
		file       []byte
		wantStatus int
		wantCode   string
		storedKey  string
	}{
		{name: "accepted", key: key, expires: time.Minute, extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 204, storedKey: key},
		{name: "accepted with 201", key: key + "2", expires: time.Minute, policyMore: []any{map[string]string{"success_action_status": "201"}},
			extra: [][2]string{{"Content-Type", "image/png"}, {"success_action_status", "201"}}, file: png, wantStatus: 201, storedKey: key + "2"},
		{name: "filename substitution", key: "uploads/demo/chan/job2/${filename}", expires: time.Minute, policyMore: []any{[]any{"starts-with", "$key", "uploads/demo/chan/job2/"}},
			extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 204, storedKey: "uploads/demo/chan/job2/my photo.png"},
		{name: "too large", key: key + "3", expires: time.Minute, extra: [][2]string{{"Content-Type", "image/png"}}, file: bytes.Repeat([]byte("x"), 1025), wantStatus: 400, wantCode: "EntityTooLarge"},
		{name: "too small", key: key + "4", expires: time.Minute, extra: [][2]string{{"Content-Type", "image/png"}}, file: nil, wantStatus: 400, wantCode: "EntityTooSmall"},
		{name: "wrong key", key: key + "5", expires: time.Minute, mutate: func(f map[string]string) { f["key"] = "uploads/other/evil.png" }, extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "wrong content type", key: key + "6", expires: time.Minute, extra: [][2]string{{"Content-Type", "text/html"}}, file: png, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "expired", key: key + "7", expires: -time.Minute, extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "bad signature", key: key + "8", expires: time.Minute, mutate: func(f map[string]string) { f["X-Amz-Signature"] = strings.Repeat("0", 64) }, extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 403, wantCode: "SignatureDoesNotMatch"},
		{name: "field outside policy", key: key + "9", expires: time.Minute, extra: [][2]string{{"Content-Type", "image/png"}, {"x-amz-meta-evil", "1"}}, file: png, wantStatus: 403, wantCode: "AccessDenied"},
		{name: "no policy", key: key + "10", expires: time.Minute, mutate: func(f map[string]string) { delete(f, "policy") }, extra: [][2]string{{"Content-Type", "image/png"}}, file: png, wantStatus: 403, wantCode: "AccessDenied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr := presign(t, tc.key, tc.expires, tc.policyMore...)
			if got, want := pr.URL, e.url+"/herald"; got != want {
				t.Fatalf("presigned URL: got %s want %s", got, want)
			}
			fields := map[string]string{}
			for k, v := range pr.Values {
				fields[k] = v
			}
			if tc.mutate != nil {
				tc.mutate(fields)
			}
			resp, body := testkit.Upload{URL: pr.URL, Fields: fields, Extra: tc.extra, Filename: "my photo.png", Data: tc.file, Origin: "http://localhost:8080"}.MustPost(t)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status: got %d want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:8080" {
				t.Errorf("CORS header: got %q", got)
			}
			if tc.wantCode != "" {
				if !strings.Contains(string(body), "<Code>"+tc.wantCode+"</Code>") {
					t.Fatalf("body: got %s want code %s", body, tc.wantCode)
				}
				out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("herald"), Prefix: aws.String(strings.TrimSuffix(tc.key, "${filename}"))})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out.Contents {
					if *o.Key == tc.key {
						t.Fatalf("rejected upload stored %s", *o.Key)
					}
				}
				return
			}
			if tc.wantStatus == 201 && !strings.Contains(string(body), "<Key>"+tc.storedKey+"</Key>") {
				t.Errorf("201 body: %s", body)
			}
			head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String(tc.storedKey)})
			if err != nil {
				t.Fatalf("head %s: %v", tc.storedKey, err)
			}
			if got, want := aws.ToString(head.ContentType), "image/png"; got != want {
				t.Errorf("content type: got %s want %s", got, want)
			}
			if got, want := aws.ToInt64(head.ContentLength), int64(len(tc.file)); got != want {
				t.Errorf("size: got %d want %d", got, want)
			}
		})
	}
}
