package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/heraldgw/herald/processor/sniff"
)

// Placeholders a command's arguments may contain.
const (
	PlaceholderInput     = "{input}"
	PlaceholderOutput    = "{output}"
	PlaceholderOutputDir = "{outputDir}"
	PlaceholderFormat    = "{format}"
)

// maxFiles bounds the files one glob output may yield.
const maxFiles = 64

// commandFormatTypes are the formats a command output may declare, by the
// sniffed type its file must have.
var commandFormatTypes = map[string]string{
	"jpeg": sniff.JPEG, "png": sniff.PNG, "webp": sniff.WebP, "gif": sniff.GIF, "tiff": sniff.TIFF,
	"heic": sniff.HEIC, "heif": sniff.HEIF, "avif": sniff.AVIF, "pdf": sniff.PDF, "svg": sniff.SVG,
	"wav": sniff.WAV, "flac": sniff.FLAC, "aiff": sniff.AIFF, "mp3": sniff.MP3, "ogg": sniff.OGG, "m4a": sniff.M4A,
}

func commandFormats() map[string]formatInfo {
	m := make(map[string]formatInfo, len(commandFormatTypes))
	for name, mime := range commandFormatTypes {
		t, _ := sniff.ByMIME(mime)
		m[name] = formatInfo{ext: t.Ext, contentType: t.MIME}
	}
	return m
}

// CommandFormats lists the formats a command output may declare.
func CommandFormats() []string {
	out := make([]string, 0, len(commandFormatTypes))
	for f := range commandFormatTypes {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// defaultExitCodes map the exit statuses with a conventional meaning:
// EX_DATAERR of sysexits.h, and timeout(1)'s status for a command it
// stopped.
var defaultExitCodes = map[int]Code{65: CodeCorruptInput, 124: CodeTimeout}

var (
	placeholder = regexp.MustCompile(`\{[A-Za-z]+\}`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// partName is a file a glob output may yield: a plain name that is
	// safe as the last segment of an object key.
	partName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

var knownCodes = map[Code]bool{CodeUnsupportedFormat: true, CodeTooLarge: true, CodeCorruptInput: true,
	CodeTimeout: true, CodeConverterFailed: true, CodeWrongFormat: true}

// validateCommand checks a command output.
func (o OutputSpec) validateCommand() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("output %s: %s", o.Name, fmt.Sprintf(f, a...)) }
	if o.Size != 0 || o.Quality != 0 || o.Bitrate != 0 || o.Width != 0 || o.Height != 0 || o.Color != "" {
		return bad("size, quality, bitrate, width, height and color do not apply to converter %s", ConverterCommand)
	}
	if len(o.Command) == 0 || o.Command[0] == "" || placeholder.MatchString(o.Command[0]) {
		return bad("command needs a program name or path first, without placeholders")
	}
	uses := map[string]bool{}
	for _, a := range o.Command[1:] {
		for _, p := range placeholder.FindAllString(a, -1) {
			switch p {
			case PlaceholderInput, PlaceholderOutput, PlaceholderOutputDir, PlaceholderFormat:
				uses[p] = true
			default:
				return bad("unknown placeholder %s in %q (known: {input} {output} {outputDir} {format})", p, a)
			}
		}
	}
	switch {
	case !uses[PlaceholderInput]:
		return bad("command never names its input: use {input}")
	case o.Files == "" && !uses[PlaceholderOutput] && !uses[PlaceholderOutputDir]:
		return bad("command never names its output: use {output} (or {outputDir} with files)")
	case o.Files != "" && !uses[PlaceholderOutputDir]:
		return bad("files %q: the command must write into {outputDir}", o.Files)
	case o.Files != "" && uses[PlaceholderOutput]:
		return bad("files %q: a glob output has no single {output}; use {outputDir}", o.Files)
	}
	if o.Files != "" {
		if _, err := path.Match(o.Files, ""); err != nil || strings.Contains(o.Files, "/") {
			return bad("files %q: want a glob without '/'", o.Files)
		}
	}
	for _, v := range o.Env {
		name, _, set := strings.Cut(v, "=")
		switch {
		case !envName.MatchString(name):
			return bad("env %q: want NAME or NAME=value", v)
		case name == "PATH" || name == "HOME" || name == "TMPDIR" || name == "LC_ALL":
			return bad("env %q: %s is set by Herald", v, name)
		case !set && (strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "HERALD_")):
			return bad("env %q: Herald's own %s is never passed to a converter; set a value with %s=…", v, name, name)
		}
	}
	for status, code := range o.ExitCodes {
		if status < 1 || status > 255 || !knownCodes[code] {
			return bad("exitCodes %d: %q: want a status 1-255 and a failure code", status, code)
		}
	}
	return nil
}

// commandRun is one command conversion's private layout.
type commandRun struct {
	dir, in, outDir, out string
}

// command runs a command output: the input is copied into a private
// directory, the command runs there, and what it wrote is checked (type
// sniffed, size and duration probed) and moved into the work dir.
func (e *Engine) command(ctx context.Context, j job) ([]Output, error) {
	bin, err := exec.LookPath(j.spec.Command[0])
	if err != nil {
		return nil, fail(CodeConverterFailed, j.op, fmt.Errorf("find %s: %w", j.spec.Command[0], err))
	}
	r, err := newCommandRun(j)
	if err != nil {
		return nil, fail(CodeConverterFailed, j.op, err)
	}
	defer os.RemoveAll(r.dir)
	// One pass over each argument: a path that happens to contain
	// "{output}" is not expanded again.
	rep := strings.NewReplacer(PlaceholderInput, r.in, PlaceholderOutput, r.out,
		PlaceholderOutputDir, r.outDir, PlaceholderFormat, j.spec.Format)
	argv := []string{bin}
	for _, a := range j.spec.Command[1:] {
		argv = append(argv, rep.Replace(a))
	}
	private := j
	private.workDir = r.dir
	err = e.run(ctx, private.proc(commandEnv(j.spec.Env), argv...))
	if err != nil {
		return nil, commandError(j, err)
	}
	files, err := r.written(j.spec)
	if err != nil {
		return nil, fail(CodeConverterFailed, j.op, err)
	}
	outs := make([]Output, 0, len(files))
	for _, f := range files {
		o, err := e.checkWritten(ctx, j, r, f)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func newCommandRun(j job) (commandRun, error) {
	dir, err := os.MkdirTemp(j.workDir, "command-*")
	if err != nil {
		return commandRun{}, fmt.Errorf("private dir: %w", err)
	}
	r := commandRun{dir: dir, in: filepath.Join(dir, filepath.Base(j.in)), outDir: filepath.Join(dir, "out")}
	r.out = filepath.Join(r.outDir, j.spec.FileName())
	if err := os.Mkdir(r.outDir, 0o700); err != nil {
		os.RemoveAll(dir)
		return commandRun{}, fmt.Errorf("output dir: %w", err)
	}
	// A copy, not a link: the input may be shared with other outputs
	// (the processor's input cache), and tools such as jpegoptim rewrite
	// their input in place.
	if err := copyFile(j.in, r.in); err != nil {
		os.RemoveAll(dir)
		return commandRun{}, err
	}
	return r, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy input: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copy input: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy input: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy input: %w", err)
	}
	return nil
}

// commandEnv is the allow-listed part of a command's environment.
func commandEnv(allow []string) []string {
	var env []string
	for _, v := range allow {
		if strings.Contains(v, "=") {
			env = append(env, v)
		} else if val, ok := os.LookupEnv(v); ok {
			env = append(env, v+"="+val)
		}
	}
	return env
}

// commandError maps a failed command run to a failure code: the limits
// first, then the exit status through ExitCodes and the defaults.
func commandError(j job, err error) error {
	var pe *procError
	if !errors.As(err, &pe) {
		return err // ctx ended: classified by the caller
	}
	detail := fmt.Errorf("%s: %w", j.spec.Command[0], err)
	var ee *exec.ExitError
	if !errors.As(pe.err, &ee) {
		return fail(CodeConverterFailed, j.op, detail)
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled() && ws.Signal() == syscall.SIGXCPU,
		ws.Signaled() && ws.Signal() == syscall.SIGKILL && j.limits.CPUTimeLimit > 0 && *j.cpu >= j.limits.CPUTimeLimit:
		return fail(CodeTimeout, j.op, fmt.Errorf("CPU time limit of %s reached: %w", j.limits.CPUTimeLimit, detail))
	case ws.Signaled() && ws.Signal() == syscall.SIGXFSZ:
		return fail(CodeConverterFailed, j.op, fmt.Errorf("file size limit of %d bytes reached: %w", j.limits.FileSizeLimit, detail))
	case ws.Signaled():
		return fail(CodeConverterFailed, j.op, detail)
	}
	status := ee.ExitCode()
	if c, ok := j.spec.ExitCodes[status]; ok {
		return fail(c, j.op, detail)
	}
	if c, ok := defaultExitCodes[status]; ok {
		return fail(c, j.op, detail)
	}
	return fail(CodeConverterFailed, j.op, detail)
}

// written lists the files the command produced: {output}, or the
// matches of Files in {outputDir}, in name order. Only regular files
// count; a symlink (which could point anywhere) is refused.
func (r commandRun) written(spec OutputSpec) ([]string, error) {
	if spec.Files == "" {
		st, err := os.Lstat(r.out)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("the command exited 0 but did not write %s", spec.FileName())
		case err != nil:
			return nil, err
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file", spec.FileName())
		}
		return []string{r.out}, nil
	}
	ents, err := os.ReadDir(r.outDir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, ent := range ents {
		if ok, _ := path.Match(spec.Files, ent.Name()); !ok {
			continue
		}
		switch {
		case !ent.Type().IsRegular():
			return nil, fmt.Errorf("%s is not a regular file", ent.Name())
		case !partName.MatchString(ent.Name()):
			return nil, fmt.Errorf("file name %q: want 1-100 of [A-Za-z0-9._-], starting alphanumeric", ent.Name())
		case len(files) == maxFiles:
			return nil, fmt.Errorf("more than %d files match %q", maxFiles, spec.Files)
		}
		files = append(files, filepath.Join(r.outDir, ent.Name()))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("the command exited 0 but wrote no file matching %q", spec.Files)
	}
	return files, nil
}

// checkWritten sniffs one written file against the declared format,
// probes its size or duration, and moves it into the work dir.
func (e *Engine) checkWritten(ctx context.Context, j job, r commandRun, file string) (Output, error) {
	base := filepath.Base(file)
	want := commandFormatTypes[j.spec.Format]
	typ, err := sniff.File(file)
	switch {
	case err != nil:
		return Output{}, fail(CodeConverterFailed, j.op, err)
	case typ.MIME != want:
		got := typ.MIME
		if got == "" {
			got = "an unrecognised type"
		}
		return Output{}, fail(CodeWrongFormat, j.op, fmt.Errorf("%s is %s, the output declares %s (%s)", base, got, j.spec.Format, want))
	}
	pj := job{in: file, workDir: r.dir, typ: typ, spec: j.spec, op: j.op, limits: j.limits, cpu: j.cpu}
	var o Output
	switch typ.Kind {
	case sniff.KindImage:
		ld := imageLoaders[typ.MIME]
		if !e.loaders[ld.name] {
			return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("%s: this libvips has no %s to check it with", base, ld.name))
		}
		var env []string
		if !ld.untrusted {
			env = []string{"VIPS_BLOCK_UNTRUSTED=1"}
		}
		if o.Width, o.Height, err = e.imageSize(ctx, pj, ld, env); err != nil {
			return Output{}, asWrongFormat(err)
		}
	case sniff.KindAudio:
		if o.Duration, err = e.probe(ctx, pj, demuxers[typ.MIME]); err != nil {
			return Output{}, asWrongFormat(err)
		}
	}
	name, dst := j.spec.Name, j.out
	if j.spec.Files != "" {
		name = j.spec.Name + "-" + strings.TrimSuffix(base, path.Ext(base))
		dst = filepath.Join(j.workDir, j.spec.Name+"-"+base)
	}
	if err := os.Rename(file, dst); err != nil {
		return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("move %s: %w", base, err))
	}
	st, err := os.Stat(dst)
	if err != nil {
		return Output{}, fail(CodeConverterFailed, j.op, err)
	}
	if st.Size() == 0 {
		return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("%s is empty", base))
	}
	o.Name, o.Path, o.ContentType, o.Bytes = name, dst, j.spec.ContentType(), st.Size()
	return o, nil
}

// asWrongFormat turns a probe's corrupt_input or unsupported_format
// (which would blame the upload) into wrong_output_format: here the file
// is the command's.
func asWrongFormat(err error) error {
	var ce *Error
	if errors.As(err, &ce) && (ce.Code == CodeCorruptInput || ce.Code == CodeUnsupportedFormat) {
		return fail(CodeWrongFormat, ce.Op, ce.Err)
	}
	return err
}
