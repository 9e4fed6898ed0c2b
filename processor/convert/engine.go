package convert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/heraldgw/herald/processor/sniff"
)

// Request asks for one output made from one local input file.
type Request struct {
	// InputPath is the downloaded object. Its name is chosen by the caller,
	// not the uploader, and must not contain '[' or ']' (libvips reads
	// those as load options). The file's type is sniffed again here; the
	// name and any declared type are ignored.
	InputPath string
	// WorkDir receives the output file (Output.FileName()); converter
	// processes run there with it as TMPDIR. Typically from NewWorkDir.
	WorkDir string
	Output  OutputSpec
}

// Output describes a file a conversion wrote.
type Output struct {
	// Name is the spec's name ("thumb-256"); Path's base is Name.Ext.
	Name        string
	Path        string
	ContentType string
	// Width and Height are the pixel size of image and waveform outputs,
	// read back from the written file.
	Width, Height int
	// Duration is the input's duration for audio and waveform outputs,
	// and the written file's for audio command outputs.
	Duration time.Duration
	Bytes    int64
	// Parts are the files of a command output with Files (a glob), in
	// name order, each named {Name}-{file} without its extension; the
	// other fields are then zero. Nil for every other output.
	Parts []Output
	// CPU is the CPU time (user and system) the conversion's processes
	// used.
	CPU time.Duration
}

// Converter makes one output from one input. Outputs of a job are
// independent calls, so a consumer can run them as separate steps, report
// progress after each, and retry one without the others.
type Converter interface {
	Convert(ctx context.Context, req Request) (Output, error)
}

// Engine is the [Converter]: libvips for images, ffmpeg for audio, and the
// operator's own programs for command outputs.
// It is safe for concurrent use; it holds no per-call state.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	vips    string
	header  string
	ffmpeg  string
	ffprobe string
	prlimit string // empty when no output has a limit on
	// loaders is the set of libvips loader operation names in this build.
	loaders map[string]bool
}

var _ Converter = (*Engine)(nil)

// New checks the tools and pipelines and returns an Engine. It fails when a
// tool is missing (prlimit is only needed while some limit is on; each
// command output's program must be found) or a pipeline is invalid, so a
// misconfigured processor stops at start-up rather than failing every
// job.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := validatePipelines(cfg.Pipelines); err != nil {
		return nil, fmt.Errorf("convert config: %w", err)
	}
	e := &Engine{cfg: cfg, log: log}
	for _, t := range []struct {
		dst  *string
		name string
	}{{&e.vips, cfg.Vips}, {&e.header, cfg.VipsHeader}, {&e.ffmpeg, cfg.FFmpeg}, {&e.ffprobe, cfg.FFprobe}} {
		p, err := exec.LookPath(t.name)
		if err != nil {
			return nil, fmt.Errorf("convert: find %s: %w", t.name, err)
		}
		*t.dst = p
	}
	needPrlimit := e.limitsFor(OutputSpec{}).enabled()
	for _, pl := range cfg.Pipelines {
		for _, o := range pl.Outputs {
			o, _ = pl.Output(o.FileName())
			needPrlimit = needPrlimit || e.limitsFor(o).enabled()
			if o.Converter != ConverterCommand {
				continue
			}
			if _, err := exec.LookPath(o.Command[0]); err != nil {
				return nil, fmt.Errorf("convert: pipeline %s, output %s: find %s: %w", pl.Name, o.Name, o.Command[0], err)
			}
		}
	}
	if needPrlimit {
		p, err := exec.LookPath(cfg.Prlimit)
		if err != nil {
			return nil, fmt.Errorf("convert: find %s (needed for memoryLimit, cpuTimeLimit and fileSizeLimit; set them negative to run without): %w", cfg.Prlimit, err)
		}
		e.prlimit = p
	}
	loaders, err := e.vipsLoaders(ctx)
	if err != nil {
		return nil, err
	}
	e.loaders = loaders
	return e, nil
}

func (c Config) withDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Vips, "vips")
	def(&c.VipsHeader, "vipsheader")
	def(&c.FFmpeg, "ffmpeg")
	def(&c.FFprobe, "ffprobe")
	def(&c.Prlimit, "prlimit")
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 2 << 30
	}
	if c.FileSizeLimit == 0 {
		c.FileSizeLimit = 1 << 30
	}
	if c.MaxPixels == 0 {
		c.MaxPixels = 100_000_000
	}
	if c.MaxDuration == 0 {
		c.MaxDuration = time.Hour
	}
	if c.VectorCPUTimeLimit == 0 {
		c.VectorCPUTimeLimit = DefaultVectorCPUTimeLimit
	}
	if c.ImageTimeout == 0 {
		c.ImageTimeout = time.Minute
	}
	if c.AudioTimeout == 0 {
		c.AudioTimeout = 5 * time.Minute
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = time.Minute
	}
	if c.StderrTail == 0 {
		c.StderrTail = 2048
	}
	if c.Nice == 0 {
		c.Nice = 10
	}
	c.Nice = min(c.Nice, 19)
	if c.Pipelines == nil {
		c.Pipelines = DefaultPipelines()
	}
	return c
}

// DefaultVectorCPUTimeLimit is Config.VectorCPUTimeLimit's default.
const DefaultVectorCPUTimeLimit = 10 * time.Second

var loaderName = regexp.MustCompile(`\(([a-z0-9_]+load)\)`)

// vipsLoaders lists the file loaders this libvips build has, so a format
// whose loader is missing fails as unsupported_format, not as a crash.
func (e *Engine) vipsLoaders(ctx context.Context) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, e.vips, "-l", "foreign").Output()
	if err != nil {
		return nil, fmt.Errorf("convert: list libvips loaders with %s -l foreign: %w", e.vips, err)
	}
	m := map[string]bool{}
	for _, sub := range loaderName.FindAllSubmatch(out, -1) {
		m[string(sub[1])] = true
	}
	return m, nil
}

// Pipelines returns the configured pipelines (defaults filled in).
func (e *Engine) Pipelines() []Pipeline { return e.cfg.Pipelines }

// Select returns the pipeline for an object key and its sniffed MIME type,
// or an unsupported_format *Error wrapping ErrNoPipeline.
func (e *Engine) Select(key, mime string) (Pipeline, error) {
	return SelectPipeline(e.cfg.Pipelines, key, mime)
}

// Convert makes req.Output from req.InputPath. Failures are *Error with a
// Code; a canceled ctx returns an error wrapping context.Canceled instead,
// since the job did not fail. A failed call leaves no output file behind.
func (e *Engine) Convert(ctx context.Context, req Request) (Output, error) {
	spec := req.Output
	op := spec.Name
	if err := spec.Validate(); err != nil {
		return Output{}, fail(CodeConverterFailed, op, err)
	}
	op = spec.FileName()
	spec = spec.withDefaults()
	in, err := filepath.Abs(req.InputPath)
	if err != nil || strings.ContainsAny(in, "[]") {
		return Output{}, fail(CodeConverterFailed, op, fmt.Errorf("input path %q is not usable: it must not contain '[' or ']'", req.InputPath))
	}
	wd, err := filepath.Abs(req.WorkDir)
	if err != nil || req.WorkDir == "" || strings.ContainsAny(wd, "[]") {
		return Output{}, fail(CodeConverterFailed, op, fmt.Errorf("work dir %q is not usable", req.WorkDir))
	}
	st, err := os.Stat(in)
	switch {
	case err != nil:
		return Output{}, fail(CodeConverterFailed, op, fmt.Errorf("input: %w", err))
	case !st.Mode().IsRegular():
		return Output{}, fail(CodeConverterFailed, op, errors.New("input is not a regular file"))
	case st.Size() == 0:
		return Output{}, fail(CodeCorruptInput, op, errors.New("input is empty"))
	}
	typ, err := sniff.File(in)
	if err != nil {
		return Output{}, fail(CodeConverterFailed, op, err)
	}
	if !typ.Known() {
		return Output{}, fail(CodeUnsupportedFormat, op, errors.New("input type not recognised"))
	}

	j := job{in: in, workDir: wd, typ: typ, spec: spec, out: filepath.Join(wd, spec.FileName()), op: op,
		limits: e.limitsFor(spec), cpu: new(time.Duration)}
	start := time.Now()
	out, err := e.convert(ctx, j)
	if err != nil {
		_ = os.Remove(j.out)
		err = e.classify(ctx, op, err)
		var ce *Error
		if errors.As(err, &ce) {
			ce.CPU = *j.cpu
		}
		e.log.LogAttrs(ctx, slog.LevelDebug, "convert failed",
			slog.String("output", op), slog.String("input_type", typ.MIME),
			slog.String("code", string(CodeOf(err))), slog.Duration("elapsed", time.Since(start)),
			slog.String("error", err.Error()))
		return Output{}, err
	}
	out.CPU = *j.cpu
	e.log.LogAttrs(ctx, slog.LevelDebug, "converted",
		slog.String("output", op), slog.String("input_type", typ.MIME),
		slog.Int("width", out.Width), slog.Int("height", out.Height), slog.Int("parts", len(out.Parts)),
		slog.Int64("bytes", out.Bytes), slog.Duration("cpu", out.CPU), slog.Duration("elapsed", time.Since(start)))
	return out, nil
}

// convert runs j's converter under its timeout.
func (e *Engine) convert(ctx context.Context, j job) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, j.limits.Timeout)
	defer cancel()
	switch j.spec.Converter {
	case ConverterImage:
		return e.image(ctx, j)
	case ConverterAudio, ConverterWaveform:
		return e.audio(ctx, j)
	}
	outs, err := e.command(ctx, j)
	switch {
	case err != nil:
		for _, o := range outs {
			_ = os.Remove(o.Path)
		}
		return Output{}, err
	case j.spec.Files == "":
		return outs[0], nil
	}
	return Output{Name: j.spec.Name, ContentType: j.spec.ContentType(), Parts: outs}, nil
}

// job is one Convert call's resolved inputs.
type job struct {
	in, workDir, out, op string
	typ                  sniff.Type
	spec                 OutputSpec
	limits               Limits
	// cpu adds up the CPU time of the call's processes.
	cpu *time.Duration
}

// proc is a process of the job, under its limits.
func (j job) proc(env []string, argv ...string) proc {
	return proc{argv: argv, workDir: j.workDir, extraEnv: env, limits: j.limits, cpu: j.cpu}
}

// classify turns context ends into their codes. Errors that are already
// *Error pass through.
func (e *Engine) classify(ctx context.Context, op string, err error) error {
	var ce *Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fail(CodeTimeout, op, fmt.Errorf("converter killed after its deadline: %w", err))
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("convert %s: %w", op, err)
	}
	return fail(CodeConverterFailed, op, err)
}

// finish stats the written output and fills the common fields.
func finish(j job, width, height int, d time.Duration) (Output, error) {
	st, err := os.Stat(j.out)
	if err != nil {
		return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("output not written: %w", err))
	}
	if st.Size() == 0 {
		return Output{}, fail(CodeConverterFailed, j.op, errors.New("output is empty"))
	}
	return Output{
		Name:        j.spec.Name,
		Path:        j.out,
		ContentType: j.spec.ContentType(),
		Width:       width,
		Height:      height,
		Duration:    d,
		Bytes:       st.Size(),
	}, nil
}
