package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldgw/herald/processor/sniff"
)

// demuxers pins ffmpeg's input format to the sniffed type. Without it
// ffmpeg probes, and a file could select a playlist demuxer (HLS, concat)
// that opens further files or URLs named inside it.
var demuxers = map[string]string{
	sniff.WAV:  "wav",
	sniff.FLAC: "flac",
	sniff.AIFF: "aiff",
	sniff.MP3:  "mp3",
	sniff.OGG:  "ogg",
	sniff.M4A:  "mov", // ffmpeg's demuxer for mov, mp4, m4a
}

// ffmpegInput are the arguments that open the input safely: only the file
// protocol, a fixed demuxer, and the path spelled as a file: URL so it can
// never be read as an option or another protocol.
func ffmpegInput(demuxer, path string) []string {
	return []string{"-protocol_whitelist", "file", "-f", demuxer, "-i", "file:" + path}
}

// audio makes an audio or waveform output with ffmpeg, after ffprobe has
// confirmed an audio stream and a duration within the limit.
func (e *Engine) audio(ctx context.Context, j job) (Output, error) {
	demuxer, ok := demuxers[j.typ.MIME]
	if !ok {
		return Output{}, fail(CodeUnsupportedFormat, j.op, fmt.Errorf("%s is not an audio type", j.typ.MIME))
	}
	d, err := e.probe(ctx, j, demuxer)
	if err != nil {
		return Output{}, err
	}
	if d > e.cfg.MaxDuration {
		return Output{}, fail(CodeTooLarge, j.op, fmt.Errorf("%s lasts %s, limit %s", j.typ.MIME, d.Round(time.Second), e.cfg.MaxDuration))
	}

	args := []string{e.ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-xerror"}
	args = append(args, ffmpegInput(demuxer, j.in)...)
	kbps := strconv.Itoa(j.spec.Bitrate) + "k"
	switch {
	case j.spec.Converter == ConverterAudio && j.spec.Format == "mp3":
		args = append(args, "-map", "0:a:0", "-map_metadata", "-1", "-c:a", "libmp3lame", "-b:a", kbps, "-f", "mp3")
	case j.spec.Converter == ConverterAudio && j.spec.Format == "opus":
		args = append(args, "-map", "0:a:0", "-map_metadata", "-1", "-c:a", "libopus", "-b:a", kbps, "-f", "webm")
	case j.spec.Converter == ConverterWaveform:
		size := strconv.Itoa(j.spec.Width) + "x" + strconv.Itoa(j.spec.Height)
		args = append(args,
			"-filter_complex", "[0:a:0]aformat=channel_layouts=mono,showwavespic=s="+size+":colors="+j.spec.Color+"[w]",
			"-map", "[w]", "-frames:v", "1", "-c:v", "png", "-f", "image2", "-update", "1")
	default:
		return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("no ffmpeg recipe for %s/%s", j.spec.Converter, j.spec.Format))
	}
	args = append(args, "-y", "file:"+j.out)
	if err := e.run(ctx, j.proc(nil, args...)); err != nil {
		return Output{}, ffmpegError(j.op, "ffmpeg", err)
	}
	var w, h int
	if j.spec.Converter == ConverterWaveform {
		if w, h, err = outputSize(j.out); err != nil {
			return Output{}, fail(CodeConverterFailed, j.op, fmt.Errorf("read back waveform: %w", err))
		}
	}
	return finish(j, w, h, d)
}

// probeResult is the part of ffprobe's JSON used here.
type probeResult struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

// probe returns the input's duration, failing unless it has an audio stream.
func (e *Engine) probe(ctx context.Context, j job, demuxer string) (time.Duration, error) {
	args := []string{e.ffprobe, "-hide_banner", "-v", "error"}
	args = append(args, ffmpegInput(demuxer, j.in)...)
	args = append(args, "-show_entries", "format=duration:stream=codec_type", "-of", "json")
	stdout := newTail(64 << 10)
	err := e.runOut(ctx, j.proc(nil, args...), stdout)
	if err != nil {
		var pe *procError
		if errors.As(err, &pe) && !pe.resourceFailure() {
			// The demuxer was chosen from the magic bytes, so a file it
			// cannot open is damaged.
			return 0, fail(CodeCorruptInput, j.op, fmt.Errorf("ffprobe: %w", err))
		}
		return 0, ffmpegError(j.op, "ffprobe", err)
	}
	var pr probeResult
	if err := json.Unmarshal(stdout.buf, &pr); err != nil {
		return 0, fail(CodeConverterFailed, j.op, fmt.Errorf("ffprobe output: %w", err))
	}
	audio := false
	for _, s := range pr.Streams {
		audio = audio || s.CodecType == "audio"
	}
	if !audio {
		return 0, fail(CodeCorruptInput, j.op, errors.New("no audio stream"))
	}
	secs, err := strconv.ParseFloat(pr.Format.Duration, 64)
	if err != nil || secs < 0 {
		// Some streams (raw MP3 without a header frame) have no duration
		// until decoded; the timeout still bounds them.
		return 0, nil
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// ffmpegError classifies a failed ffmpeg run: decode errors are the
// input's fault, the rest is the converter's.
func ffmpegError(op, step string, err error) error {
	return toolError(op, step, err, "invalid data", "error while decoding", "corrupt", "truncat", "end of file", "could not find codec parameters")
}
