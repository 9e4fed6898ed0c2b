package localaws

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

func TestAWSCLI(t *testing.T) {
	cliAWS := testkit.AWSCLI(t)
	cfg := Config{Notify: heraldNotify, Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: quietLogger()}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	testkit.Go(t, srv.Run)
	work := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, cliAWS, append([]string{"--endpoint-url", srv.URL()}, args...)...)
		cmd.Env = testkit.AWSCLIEnv(work)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("aws %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}
	small := filepath.Join(work, "small name.txt")
	big := filepath.Join(work, "big.bin")
	os.WriteFile(small, []byte("hello from the cli\n"), 0o644)
	data := make([]byte, 9<<20+17) // above the CLI's 8 MB multipart threshold
	for i := range data {
		data[i] = byte(i % 251)
	}
	os.WriteFile(big, data, 0o644)

	run("s3", "cp", small, "s3://herald/uploads/cli/small name.txt")
	run("s3", "cp", big, "s3://herald/uploads/cli/big.bin")
	ls := run("s3", "ls", "s3://herald/uploads/cli/")
	for _, want := range []string{"small name.txt", "big.bin", "9437201"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ls output lacks %q:\n%s", want, ls)
		}
	}
	head := run("s3api", "head-object", "--bucket", "herald", "--key", "uploads/cli/big.bin")
	if !strings.Contains(head, `-2\"`) {
		t.Errorf("big.bin was not a multipart upload: %s", head)
	}
	back := filepath.Join(work, "back.bin")
	run("s3", "cp", "s3://herald/uploads/cli/big.bin", back)
	got, _ := os.ReadFile(back)
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded big.bin differs")
	}
	run("s3", "rm", "s3://herald/uploads/cli/small name.txt")
	if ls := run("s3", "ls", "s3://herald/uploads/cli/"); strings.Contains(ls, "small") {
		t.Errorf("small name.txt still listed after rm:\n%s", ls)
	}
	conf := `{"QueueConfigurations":[{"Id":"cli","QueueArn":"arn:aws:sqs:us-east-1:000000000000:herald-events","Events":["s3:ObjectCreated:Put"],"Filter":{"Key":{"FilterRules":[{"Name":"prefix","Value":"cli/"}]}}}]}`
	run("s3api", "put-bucket-notification-configuration", "--bucket", "herald", "--notification-configuration", conf)
	out := run("s3api", "get-bucket-notification-configuration", "--bucket", "herald")
	if !strings.Contains(out, `"Id": "cli"`) || !strings.Contains(out, `"Value": "cli/"`) {
		t.Errorf("notification read back:\n%s", out)
	}
}
