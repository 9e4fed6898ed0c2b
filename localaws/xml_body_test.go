package localaws

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	status, b := postSwappedBody(t, ctx, e.url+"/herald?delete=", "application/xml", "s3", signed, sent)
	if status == http.StatusOK {
		t.Errorf("oversized body with a wrong hash accepted: %s", b)
	}
	if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("herald"), Key: aws.String("victim")}); err != nil {
		t.Fatalf("victim deleted by a body its signature does not cover: %v", err)
	}
}
