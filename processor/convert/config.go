package convert

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	jobkey "github.com/heraldgw/herald/job" // convert has its own unexported job type
	"github.com/heraldgw/herald/processor/sniff"
)

// Config configures an [Engine]. Every zero field means the documented
// default, so the zero Config is a working setup with the built-in
// pipelines.
type Config struct {
	// Tool paths or names looked up in PATH. Defaults: "vips",
	// "vipsheader", "ffmpeg", "ffprobe", "prlimit".
	Vips       string `yaml:"vips"`
	VipsHeader string `yaml:"vipsheader"`
	FFmpeg     string `yaml:"ffmpeg"`
	FFprobe    string `yaml:"ffprobe"`
	Prlimit    string `yaml:"prlimit"`

	// MemoryLimit caps each converter process's address space (RLIMIT_AS,
	// set through util-linux prlimit), in bytes. 0 means 2 GiB; negative
	// turns the limit off. prlimit is not needed once every limit
	// (memory, CPU time, file size) is off.
	MemoryLimit int64 `yaml:"memoryLimit"`
	// CPUTimeLimit caps each converter process's CPU time (RLIMIT_CPU).
	// 0 means the conversion's timeout; negative turns it off.
	CPUTimeLimit time.Duration `yaml:"cpuTimeLimit"`
	// FileSizeLimit caps each file a converter process writes
	// (RLIMIT_FSIZE), in bytes. 0 means 1 GiB; negative turns it off.
	FileSizeLimit int64 `yaml:"fileSizeLimit"`
	// MaxPixels refuses images whose declared width×height exceeds it,
	// before any decoding (too_large). 0 means 100 000 000 (100 MP). For
	// PDF and SVG the declared size at 72 dpi / user units counts.
	MaxPixels int64 `yaml:"maxPixels"`
	// VectorCPUTimeLimit caps the CPU time of rendering a vector input
	// (SVG, PDF) in each converter process (RLIMIT_CPU), below the
	// output's own CPU limit: what a vector file costs is not its pixel
	// count (a 13 KB SVG of blurred shapes renders for a minute) and
	// libvips has no other bound on it. 0 means 10 s; negative leaves
	// vector inputs to the output's limit.
	VectorCPUTimeLimit time.Duration `yaml:"vectorCPUTimeLimit"`
	// MaxDuration refuses longer audio (too_large). 0 means 1 hour.
	MaxDuration time.Duration `yaml:"maxDuration"`
	// ImageTimeout, AudioTimeout and CommandTimeout bound one Convert
	// call, all processes included, by converter (audio covers waveform).
	// 0 means 60 s, 5 min and 60 s.
	ImageTimeout   time.Duration `yaml:"imageTimeout"`
	AudioTimeout   time.Duration `yaml:"audioTimeout"`
	CommandTimeout time.Duration `yaml:"commandTimeout"`
	// StderrTail is how many trailing bytes of a failed tool's output
	// (stderr, and stdout where the tool's stdout is not read) go into the
	// error. 0 means 2048.
	StderrTail int `yaml:"stderrTail"`
	// Nice is the scheduling niceness converter processes run at (1-19),
	// so that on a busy machine the processor's own short work (queue,
	// storage, the job.completed path) runs first and converters take
	// the CPU time left, which is most of it. 0 means 10; negative keeps
	// the processor's own priority.
	Nice int `yaml:"nice"`

	// Pipelines are tried in order; the first match wins. Nil means
	// [DefaultPipelines].
	Pipelines []Pipeline `yaml:"pipelines"`
}

// Pipeline maps uploads to the outputs made from them.
type Pipeline struct {
	Name string `yaml:"name"`
	// KeyPrefix must prefix the object key; empty matches every key.
	KeyPrefix string `yaml:"keyPrefix"`
	// MIME lists the sniffed types this pipeline takes: exact types or a
	// "type/*" wildcard. Empty matches every type.
	MIME    []string     `yaml:"mime"`
	Outputs []OutputSpec `yaml:"outputs"`
	// Limits apply to every output of the pipeline; an output's own
	// Limits override them field by field.
	Limits Limits `yaml:"limits"`
}

// Output returns the pipeline's output that writes file (an
// [OutputSpec.FileName]), with the pipeline's limits folded into the
// spec's, as [Converter.Convert] expects it.
func (p Pipeline) Output(file string) (OutputSpec, bool) {
	for _, o := range p.Outputs {
		if o.FileName() == file {
			o.Limits = o.Limits.Or(p.Limits)
			return o, true
		}
	}
	return OutputSpec{}, false
}

// Converter names an output's converter.
const (
	// ConverterImage renders a still image with libvips: Format webp,
	// jpeg or png, fitted inside Size×Size, never enlarged.
	ConverterImage = "image"
	// ConverterAudio transcodes with ffmpeg: Format mp3 (libmp3lame) or
	// opus (libopus in WebM).
	ConverterAudio = "audio"
	// ConverterWaveform draws the audio's waveform with ffmpeg's
	// showwavespic: Format png, Width×Height.
	ConverterWaveform = "waveform"
	// ConverterCommand runs the operator's own program, from Command
	// (argv, never a shell): Format is what it must write (see
	// [CommandFormats]).
	ConverterCommand = "command"
)

// OutputSpec is one output of a pipeline. Its file is Name.Ext(), and the
// processor stores it at converted/{app}/{channel}/{jobId}/{Name}.{Ext()}.
// Two specs may share a Name with different formats (thumb-256.webp and
// its JPEG fallback thumb-256.jpg): the browser picks by content type.
type OutputSpec struct {
	Name      string `yaml:"name"`
	Converter string `yaml:"converter"`
	Format    string `yaml:"format"`
	// Size bounds an image output's longest edge in pixels; 0 means 256.
	Size int `yaml:"size"`
	// Quality is the lossy encoder quality 1–100; 0 means 80 (WebP) or
	// 82 (JPEG).
	Quality int `yaml:"quality"`
	// Bitrate is the audio bit rate in kbit/s; 0 means 128 (MP3) or 96
	// (Opus).
	Bitrate int `yaml:"bitrate"`
	// Width and Height size a waveform; 0 means 1024×160.
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// Color is the waveform's colour as #rrggbb; empty means #3b82f6.
	Color string `yaml:"color"`

	// Command is a command output's argv. Arguments may contain the
	// placeholders {input}, {output}, {outputDir} and {format}; each
	// stays inside its one argument whatever the path holds.
	Command []string `yaml:"command"`
	// Files, when set, is a glob (path.Match syntax, no '/') naming the
	// files a command writes into {outputDir}; every match is an output,
	// stored as {Name}-{file}. Empty: the command writes {output}.
	Files string `yaml:"files"`
	// Env lists what a command gets besides PATH, HOME, TMPDIR and
	// LC_ALL: "NAME" passes Herald's own value of NAME through (never
	// AWS_* or HERALD_*), "NAME=value" sets it.
	Env []string `yaml:"env"`
	// ExitCodes maps a command's non-zero exit statuses to job.failed
	// codes, on top of the defaults (65 corrupt_input, 124 timeout,
	// anything else converter_failed).
	ExitCodes map[int]Code `yaml:"exitCodes"`
	// Limits override the pipeline's and Config's for this output.
	Limits Limits `yaml:"limits"`
}

// formatInfo is what a format means on disk.
type formatInfo struct {
	ext, contentType string
}

var formats = map[string]map[string]formatInfo{
	ConverterImage: {
		"webp": {"webp", "image/webp"},
		"jpeg": {"jpg", "image/jpeg"},
		"png":  {"png", "image/png"},
	},
	ConverterAudio: {
		"mp3":  {"mp3", "audio/mpeg"},
		"opus": {"webm", "audio/webm"},
	},
	ConverterWaveform: {
		"png": {"png", "image/png"},
	},
	ConverterCommand: commandFormats(),
}

// Ext is the output file's extension without the dot ("webp", "jpg").
func (o OutputSpec) Ext() string { return formats[o.Converter][o.Format].ext }

// ContentType is the output's media type.
func (o OutputSpec) ContentType() string { return formats[o.Converter][o.Format].contentType }

// FileName is the output's file name: Name.Ext().
func (o OutputSpec) FileName() string { return o.Name + "." + o.Ext() }

var outputName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Validate reports the first problem with the spec.
func (o OutputSpec) Validate() error {
	if !outputName.MatchString(o.Name) {
		return fmt.Errorf("output name %q: want 1-64 of [A-Za-z0-9_-], starting alphanumeric", o.Name)
	}
	fs, ok := formats[o.Converter]
	if !ok {
		return fmt.Errorf("output %s: unknown converter %q", o.Name, o.Converter)
	}
	if _, ok := fs[o.Format]; !ok {
		return fmt.Errorf("output %s: converter %s has no format %q", o.Name, o.Converter, o.Format)
	}
	if err := o.Limits.Validate(); err != nil {
		return fmt.Errorf("output %s: limits: %w", o.Name, err)
	}
	if o.Converter == ConverterCommand {
		return o.validateCommand()
	}
	if len(o.Command) > 0 || o.Files != "" || len(o.Env) > 0 || len(o.ExitCodes) > 0 {
		return fmt.Errorf("output %s: command, files, env and exitCodes belong to converter %s only", o.Name, ConverterCommand)
	}
	switch {
	case o.Size < 0 || o.Size > 8192:
		return fmt.Errorf("output %s: size %d out of 0..8192", o.Name, o.Size)
	case o.Quality < 0 || o.Quality > 100:
		return fmt.Errorf("output %s: quality %d out of 0..100", o.Name, o.Quality)
	case o.Bitrate < 0 || o.Bitrate > 512:
		return fmt.Errorf("output %s: bitrate %d out of 0..512", o.Name, o.Bitrate)
	case o.Width < 0 || o.Width > 8192 || o.Height < 0 || o.Height > 8192:
		return fmt.Errorf("output %s: waveform %dx%d out of 0..8192", o.Name, o.Width, o.Height)
	case o.Color != "" && !hexColor.MatchString(o.Color):
		return fmt.Errorf("output %s: color %q: want #rrggbb", o.Name, o.Color)
	}
	return nil
}

// withDefaults fills the documented defaults.
func (o OutputSpec) withDefaults() OutputSpec {
	if o.Size == 0 {
		o.Size = 256
	}
	if o.Quality == 0 {
		o.Quality = 80
		if o.Format == "jpeg" {
			o.Quality = 82
		}
	}
	if o.Bitrate == 0 {
		o.Bitrate = 128
		if o.Format == "opus" {
			o.Bitrate = 96
		}
	}
	if o.Width == 0 {
		o.Width = 1024
	}
	if o.Height == 0 {
		o.Height = 160
	}
	if o.Color == "" {
		o.Color = "#3b82f6"
	}
	return o
}

// imageMIMEs and audioMIMEs are the sniffed types the built-in converters
// take.
var (
	imageMIMEs = []string{sniff.JPEG, sniff.PNG, sniff.WebP, sniff.GIF, sniff.TIFF, sniff.PSD,
		sniff.HEIC, sniff.HEIF, sniff.AVIF, sniff.PDF, sniff.SVG}
	audioMIMEs = []string{sniff.WAV, sniff.FLAC, sniff.AIFF, sniff.MP3, sniff.OGG, sniff.M4A}
)

// DefaultPipelines returns the built-in pipelines for keys under uploads/:
//
//   - images: thumb-256 and preview-1024, each as WebP and as a JPEG
//     fallback (thumb-256.webp, thumb-256.jpg, preview-1024.webp,
//     preview-1024.jpg);
//   - audio: audio-mp3 (.mp3), audio-opus (Opus in WebM, .webm) and
//     waveform (.png, 1024×160).
//
// Opus goes in WebM rather than Ogg because Safari has played WebM/Opus
// since version 15 but Ogg only since 18.4; Chrome, Firefox and Edge play
// both. audio-mp3 remains the fallback for anything older.
func DefaultPipelines() []Pipeline {
	img := func(name, format string, size int) OutputSpec {
		return OutputSpec{Name: name, Converter: ConverterImage, Format: format, Size: size}
	}
	return []Pipeline{
		{
			Name:      "image",
			KeyPrefix: jobkey.UploadsPrefix,
			MIME:      append([]string(nil), imageMIMEs...),
			Outputs: []OutputSpec{
				img("thumb-256", "webp", 256),
				img("thumb-256", "jpeg", 256),
				img("preview-1024", "webp", 1024),
				img("preview-1024", "jpeg", 1024),
			},
		},
		{
			Name:      "audio",
			KeyPrefix: jobkey.UploadsPrefix,
			MIME:      append([]string(nil), audioMIMEs...),
			Outputs: []OutputSpec{
				{Name: "audio-mp3", Converter: ConverterAudio, Format: "mp3"},
				{Name: "audio-opus", Converter: ConverterAudio, Format: "opus"},
				{Name: "waveform", Converter: ConverterWaveform, Format: "png"},
			},
		},
	}
}

// ErrNoPipeline is wrapped (inside an unsupported_format [*Error]) when no
// pipeline takes a key and type.
var ErrNoPipeline = errors.New("no pipeline matches")

// SelectPipeline returns the first pipeline of ps that takes key with the
// sniffed mime. An empty mime (type not recognised) matches nothing.
func SelectPipeline(ps []Pipeline, key, mime string) (Pipeline, error) {
	if mime != "" {
		for _, p := range ps {
			if strings.HasPrefix(key, p.KeyPrefix) && p.takes(mime) {
				return p, nil
			}
		}
	}
	shown := mime
	if shown == "" {
		shown = "unrecognised type"
	}
	return Pipeline{}, fail(CodeUnsupportedFormat, "select pipeline", fmt.Errorf("%w %s (%s)", ErrNoPipeline, key, shown))
}

func (p Pipeline) takes(mime string) bool {
	if len(p.MIME) == 0 {
		return true
	}
	for _, m := range p.MIME {
		if m == mime || (strings.HasSuffix(m, "/*") && strings.HasPrefix(mime, m[:len(m)-1])) {
			return true
		}
	}
	return false
}

// validatePipelines checks names and specs, and that no two outputs of a
// pipeline write the same file.
func validatePipelines(ps []Pipeline) error {
	for i, p := range ps {
		if len(p.Outputs) == 0 {
			return fmt.Errorf("pipeline %d (%s): no outputs", i, p.Name)
		}
		if err := p.Limits.Validate(); err != nil {
			return fmt.Errorf("pipeline %d (%s): limits: %w", i, p.Name, err)
		}
		seen := map[string]bool{}
		for _, o := range p.Outputs {
			if err := o.Validate(); err != nil {
				return fmt.Errorf("pipeline %d (%s): %w", i, p.Name, err)
			}
			if seen[o.FileName()] {
				return fmt.Errorf("pipeline %d (%s): two outputs write %s", i, p.Name, o.FileName())
			}
			seen[o.FileName()] = true
		}
	}
	return nil
}
