package convert

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// examplePipelines loads the pipelines of a configuration example in
// docs/examples, as `herald serve --config` would read them.
func examplePipelines(t testing.TB, file string) []Pipeline {
	t.Helper()
	var doc struct {
		Processor struct {
			Convert Config `yaml:"convert"`
		} `yaml:"processor"`
	}
	testkit.DecodeYAMLFile(t, filepath.Join("..", "..", "docs", "examples", file), &doc)
	if err := validatePipelines(doc.Processor.Convert.Pipelines); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return doc.Processor.Convert.Pipelines
}

// TestCommandExamples runs the two documented command pipelines with the
// real jpegtran and pngquant: each output is smaller than its input, of the
// declared type, and decodes with vipsheader at the input's size.
func TestCommandExamples(t *testing.T) {
	testkit.RequireTools(t, "jpegtran", "pngquant")
	src := t.TempDir()
	jpg := filepath.Join(src, "photo.jpg")
	// A baseline JPEG with default Huffman tables and metadata, as
	// cameras write them: what jpegtran -optimize improves on.
	testkit.Exec(t, "vips", "gaussnoise", filepath.Join(src, "n.v"), "640", "480", "--sigma", "30")
	testkit.Exec(t, "vips", "copy", filepath.Join(src, "n.v"), jpg+"[Q=92]")
	png := filepath.Join(src, "shot.png")
	testkit.Exec(t, "vips", "xyz", filepath.Join(src, "xyz.v"), "640", "480")
	testkit.Exec(t, "vips", "cast", filepath.Join(src, "xyz.v"), png, "uchar")
	tests := []struct {
		example, input, file, mime string
	}{
		{"optimize-jpeg.yaml", jpg, "optimized.jpg", "image/jpeg"},
		{"quantize-png.yaml", png, "quantized.png", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			ps := examplePipelines(t, tt.example)
			e := newEngine(t, func(c *Config) { c.Pipelines = ps })
			wd := t.TempDir()
			input := filepath.Join(wd, "input")
			testkit.WriteFile(t, input, testkit.ReadFile(t, tt.input))
			spec, ok := ps[0].Output(tt.file)
			if !ok {
				t.Fatalf("no output %s in %+v", tt.file, ps[0])
			}
			got, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
			if err != nil {
				t.Fatal(err)
			}
			in, _ := os.Stat(input)
			if got.Bytes <= 0 || got.Bytes >= in.Size() {
				t.Errorf("output %d bytes, input %d: not smaller", got.Bytes, in.Size())
			}
			if got.ContentType != tt.mime || got.Width != 640 || got.Height != 480 || filepath.Base(got.Path) != tt.file {
				t.Errorf("output %+v", got)
			}
			out, err := exec.Command("vipsheader", got.Path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "640x480") {
				t.Errorf("vipsheader %s: %v %s", got.Path, err, out)
			}
			assertOnly(t, wd, "input", tt.file)
		})
	}
}

// assertOnly checks that the work dir holds exactly names: the command's
// private directory is gone.
func assertOnly(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("work dir holds %v, want %v", got, names)
	}
}

func command(format string, argv ...string) OutputSpec {
	return OutputSpec{Name: "out", Converter: ConverterCommand, Format: format, Command: argv}
}

// TestCommandFailures: each way a command can fail ends in its documented
// code, and leaves no output behind.
func TestCommandFailures(t *testing.T) {
	testkit.RequireTools(t, "jpegtran")
	e := newEngine(t, nil)
	src := t.TempDir()
	png := testkit.Image(t, src, "in.png", 64, 48)
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script, "sh", "{input}", "{output}"} }
	slow := command("jpeg", sh("sleep 30")...)
	slow.Limits.Timeout = 300 * time.Millisecond
	spin := command("jpeg", sh("while :; do :; done")...)
	spin.Limits.CPUTimeLimit = time.Second
	mapped := command("jpeg", sh("echo no licence for this file >&2; exit 3")...)
	mapped.ExitCodes = map[int]Code{3: CodeUnsupportedFormat}
	tests := []struct {
		name string
		spec OutputSpec
		want Code
		msg  string
	}{
		{"non-zero exit (jpegtran given a PNG)", command("jpeg", "jpegtran", "-outfile", "{output}", "{input}"), CodeConverterFailed, "Not a JPEG file"},
		{"EX_DATAERR", command("jpeg", sh("exit 65")...), CodeCorruptInput, "exit status 65"},
		{"exit code mapped in config", mapped, CodeUnsupportedFormat, "no licence"},
		{"wrong format (PNG declared as JPEG)", command("jpeg", "cp", "{input}", "{output}"), CodeWrongFormat, "is image/png, the output declares jpeg"},
		{"unrecognised output", command("png", sh(`echo hello > "$2"`)...), CodeWrongFormat, "unrecognised type"},
		{"PNG signature, no image", command("png", sh(`printf '\211PNG\r\n\032\n' > "$2"`)...), CodeWrongFormat, "out.png"},
		{"wall timeout", slow, CodeTimeout, "deadline"},
		{"CPU time limit", spin, CodeTimeout, "CPU time limit of 1s"},
		{"no output written", command("png", sh("true")...), CodeConverterFailed, "did not write out.png"},
		{"output is a symlink", command("png", "ln", "-s", "{input}", "{output}"), CodeConverterFailed, "not a regular file"},
		{"killed by a signal", command("png", sh("kill -SEGV $$")...), CodeConverterFailed, "signal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wd := t.TempDir()
			input := filepath.Join(wd, "input")
			testkit.WriteFile(t, input, testkit.ReadFile(t, png))
			start := time.Now()
			_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: tt.spec})
			if got := CodeOf(err); got != tt.want || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("code %s, err %v; want %s mentioning %q", got, err, tt.want, tt.msg)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s", d)
			}
			assertOnly(t, wd, "input")
		})
	}
}

// TestCommandCPUTimeReported: a failed conversion still reports the CPU
// its processes used (the processor's converter CPU metric counts it).
func TestCommandCPUTimeReported(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := testkit.Image(t, wd, "in.png", 64, 48)
	spec := command("png", "/bin/sh", "-c", "while :; do :; done", "sh", "{input}")
	spec.Files = "*.png"
	spec.Command = append(spec.Command, "{outputDir}")
	spec.Limits.CPUTimeLimit = time.Second
	_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
	var ce *Error
	if !errors.As(err, &ce) || ce.CPU < 500*time.Millisecond {
		t.Fatalf("err %v (%#v): want an *Error with most of the 1s CPU limit", err, ce)
	}
}

// TestCommandPlaceholderInjection: an input whose name is built to break
// out of a shell command line (spaces, quotes, ';', $(…), backticks, a
// placeholder of its own) reaches the command as one argument, unchanged,
// and nothing in it runs.
func TestCommandPlaceholderInjection(t *testing.T) {
	e := newEngine(t, nil)
	canary := t.TempDir()
	// A file name cannot hold '/', so the paths are spelled through
	// printf and $CANARY (set below), as an attacker would.
	hostile := `it's a "photo"; cat $(printf '\57etc\57passwd') > "$CANARY"leak; $(touch "$CANARY"subst) ` +
		"`touch \"$CANARY\"tick`" + ` {output} {format}.png`
	wd := t.TempDir()
	input := filepath.Join(wd, hostile)
	testkit.WriteFile(t, input, testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "in.png", 64, 48)))

	// The script succeeds only if it got exactly two arguments and the
	// first is the input file, byte for byte.
	check := `[ "$#" -eq 2 ] && [ "$(basename "$1")" = "$NAME" ] && cmp -s "$1" "$ORIG" && cp "$1" "$2"`
	spec := command("png", "/bin/sh", "-c", check, "sh", "{input}", "{output}")
	spec.Env = []string{"NAME=" + hostile, "ORIG=" + input, "CANARY=" + canary + "/"}
	out, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
	if err != nil {
		t.Fatalf("the command did not see the name as one argument: %v", err)
	}
	if !bytes.Equal(testkit.ReadFile(t, out.Path), testkit.ReadFile(t, input)) {
		t.Error("output differs from the input")
	}
	// cp with the same argv: the file read is the input, not /etc/passwd.
	out, err = e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: command("png", "cp", "{input}", "{output}")})
	if err != nil || !bytes.Equal(testkit.ReadFile(t, out.Path), testkit.ReadFile(t, input)) {
		t.Errorf("cp {input} {output}: %v", err)
	}
	if ents, _ := os.ReadDir(canary); len(ents) != 0 {
		t.Errorf("something in the file name ran: %v", ents)
	}
}

// TestCommandSandbox: the command runs in a private directory with only
// the allow-listed environment, under the configured limits.
func TestCommandSandbox(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
	t.Setenv("PASS_ME", "passed-through")
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := testkit.Image(t, wd, "in.png", 64, 48)
	// The report goes to stdout, whose tail a failure (exit 3) puts into
	// the error message. dash's ulimit reports KiB for -v and 512-byte
	// blocks for -f.
	spec := command("png", "/bin/sh", "-c", `echo "cwd=$(pwd)"; env; ulimit -v; ulimit -t; ulimit -f; nice; ls "$(dirname "$1")"; exit 3`, "sh", "{input}", "{output}")
	spec.Env = []string{"LICENSE=abc", "PASS_ME", "OTHER_NOT_SET"}
	spec.Limits = Limits{MemoryLimit: 512 << 20, CPUTimeLimit: 7 * time.Second, FileSizeLimit: 1 << 20, Nice: 12, StderrTail: 4096}
	_, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
	if CodeOf(err) != CodeConverterFailed {
		t.Fatalf("err %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"LICENSE=abc", "PASS_ME=passed-through", "TMPDIR=" + wd + "/command-", "cwd=" + wd + "/command-",
		"| 524288 |", "| 7 |", "| 2048 |", "| 12 |", "in.png | out"} {
		if !strings.Contains(msg, want) {
			t.Errorf("sandbox report lacks %q:\n%s", want, msg)
		}
	}
	for _, bad := range []string{"do-not-leak", "OTHER_NOT_SET"} {
		if strings.Contains(msg, bad) {
			t.Errorf("environment leaked %q:\n%s", bad, msg)
		}
	}
}

// TestCommandGlob: a command writing several files into {outputDir}
// yields one part per match, each checked, in name order.
func TestCommandGlob(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := filepath.Join(wd, "input")
	testkit.WriteFile(t, input, testkit.ReadFile(t, testkit.Image(t, t.TempDir(), "in.jpg", 80, 60)))
	spec := command("jpeg", "/bin/sh", "-c", `for i in 2 1 3; do cp "$1" "$2/page-$i.jpg"; done; echo notes > "$2/notes.txt"`,
		"sh", "{input}", "{outputDir}")
	spec.Name, spec.Files = "pages", "page-*.jpg"
	out, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Parts) != 3 {
		t.Fatalf("parts %+v", out.Parts)
	}
	for i, p := range out.Parts {
		name := "pages-page-" + string(rune('1'+i))
		if p.Name != name || filepath.Base(p.Path) != name+".jpg" || p.Width != 80 || p.Height != 60 || p.ContentType != "image/jpeg" {
			t.Errorf("part %d: %+v", i, p)
		}
	}
	assertOnly(t, wd, "input", "pages-page-1.jpg", "pages-page-2.jpg", "pages-page-3.jpg")

	// One bad match fails the whole output.
	spec.Command[2] = `cp "$1" "$2/page-1.jpg"; echo text > "$2/page-2.jpg"`
	if _, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: t.TempDir(), Output: spec}); CodeOf(err) != CodeWrongFormat {
		t.Errorf("err %v, want wrong_output_format", err)
	}
	spec.Command[2] = `true`
	if _, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: t.TempDir(), Output: spec}); CodeOf(err) != CodeConverterFailed ||
		!strings.Contains(err.Error(), "no file matching") {
		t.Errorf("err %v, want converter_failed: no file matching", err)
	}
}

// TestCommandAudioDuration: an audio command output is probed for its
// duration like a built-in one.
func TestCommandAudioDuration(t *testing.T) {
	e := newEngine(t, nil)
	wd := t.TempDir()
	input := testkit.Audio(t, wd, "in.wav", 1.5)
	spec := command("flac", "ffmpeg", "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "file:{input}", "-f", "{format}", "file:{output}")
	out, err := e.Convert(context.Background(), Request{InputPath: input, WorkDir: wd, Output: spec})
	if err != nil {
		t.Fatal(err)
	}
	if out.ContentType != "audio/flac" || out.Duration < 1400*time.Millisecond || out.Duration > 1600*time.Millisecond || filepath.Ext(out.Path) != ".flac" {
		t.Errorf("output %+v", out)
	}
}

func TestValidateCommand(t *testing.T) {
	ok := command("png", "tool", "{input}", "{output}")
	mod := func(f func(*OutputSpec)) OutputSpec {
		o := ok
		o.Command = append([]string(nil), ok.Command...)
		f(&o)
		return o
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	tests := []struct {
		name string
		spec OutputSpec
		want string
	}{
		{"no command", mod(func(o *OutputSpec) { o.Command = nil }), "program name"},
		{"placeholder as program", mod(func(o *OutputSpec) { o.Command[0] = "{input}" }), "program name"},
		{"unknown placeholder", mod(func(o *OutputSpec) { o.Command = append(o.Command, "{inptu}") }), "unknown placeholder {inptu}"},
		{"no input", mod(func(o *OutputSpec) { o.Command = []string{"tool", "{output}"} }), "{input}"},
		{"no output", mod(func(o *OutputSpec) { o.Command = []string{"tool", "{input}"} }), "{output}"},
		{"glob without outputDir", mod(func(o *OutputSpec) { o.Files = "*.png" }), "{outputDir}"},
		{"glob with slash", mod(func(o *OutputSpec) { o.Files, o.Command[2] = "a/*.png", "{outputDir}" }), "without '/'"},
		{"bad glob", mod(func(o *OutputSpec) { o.Files, o.Command[2] = "[", "{outputDir}" }), "glob"},
		{"unknown format", mod(func(o *OutputSpec) { o.Format = "bmp" }), "no format"},
		{"size set", mod(func(o *OutputSpec) { o.Size = 10 }), "do not apply"},
		{"env sets PATH", mod(func(o *OutputSpec) { o.Env = []string{"PATH=/tmp"} }), "set by Herald"},
		{"env passes AWS creds", mod(func(o *OutputSpec) { o.Env = []string{"AWS_SECRET_ACCESS_KEY"} }), "never passed"},
		{"env bad name", mod(func(o *OutputSpec) { o.Env = []string{"A-B=1"} }), "NAME"},
		{"exit code 0", mod(func(o *OutputSpec) { o.ExitCodes = map[int]Code{0: CodeTimeout} }), "exitCodes"},
		{"unknown code", mod(func(o *OutputSpec) { o.ExitCodes = map[int]Code{2: "oops"} }), "exitCodes"},
		{"negative timeout", mod(func(o *OutputSpec) { o.Limits.Timeout = -time.Second }), "timeout"},
		{"command on image", OutputSpec{Name: "a", Converter: ConverterImage, Format: "png", Command: []string{"x"}}, "converter command only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNewFailsForMissingCommand(t *testing.T) {
	newEngine(t, nil) // skips without the built-in tools
	cfg := Config{Pipelines: []Pipeline{{Name: "p", Outputs: []OutputSpec{command("png", "no-such-optimizer", "{input}", "{output}")}}}}
	_, err := New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "no-such-optimizer") {
		t.Errorf("New() = %v, want an error naming the missing program", err)
	}
}

// TestLimitsInherit: output limits override the pipeline's, which
// override Config's, field by field; the CPU limit defaults to the
// timeout.
func TestLimitsInherit(t *testing.T) {
	e := newEngine(t, func(c *Config) {
		c.MemoryLimit, c.CommandTimeout = 1<<30, 40*time.Second
		c.Pipelines = []Pipeline{{Name: "p", Limits: Limits{MemoryLimit: 256 << 20, Nice: 5},
			Outputs: []OutputSpec{func() OutputSpec {
				o := command("png", "cp", "{input}", "{output}")
				o.Limits = Limits{Nice: 7, FileSizeLimit: -1}
				return o
			}()}}}
	})
	spec, _ := e.Pipelines()[0].Output("out.png")
	got := e.limitsFor(spec)
	want := Limits{MemoryLimit: 256 << 20, CPUTimeLimit: 40 * time.Second, FileSizeLimit: -1, Timeout: 40 * time.Second, Nice: 7, StderrTail: 2048}
	if got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	if args := strings.Join(got.prlimitArgs(), " "); args != "--as=268435456 --cpu=40:41" {
		t.Errorf("prlimit args %q", args)
	}
}
