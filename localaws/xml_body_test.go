package localaws

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// An XML request body is read whole, so its X-Amz-Content-Sha256 is always
// checked: a body padded past the XML size bound must not slip through
// unverified (here turning a signed delete of one key into a delete of
// another).
func TestXMLBodyHashCheckedWhenOversized(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, k := range []string{"victim", "harmless"} {
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("herald"), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
	}
	signed := `<Delete><Object><Key>harmless</Key></Object></Delete>`
	sent := `<Delete><Object><Key>victim</Key></Object></Delete>` + strings.Repeat(" ", 1<<20)
	sum := sha256.Sum256([]byte(signed))
	hash := hex.EncodeToString(sum[:])
	req, _ := http.NewRequest(http.MethodPost, e.url+"/herald?delete=", strings.NewReader(sent))
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("oversized body with a wrong hash accepted: %s", b)
	}
	if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("victim")}); err != nil {
		t.Fatalf("victim deleted by a body its signature does not cover: %v", err)
	}
}
