// Package convert turns one uploaded file into the outputs a pipeline names,
// with native tools: libvips (`vips thumbnail`, `vipsheader`) for images,
// ffmpeg/ffprobe for audio, and the operator's own programs for `command`
// outputs.
//
// # Using it
//
// The processor's consumer, per job:
//
//	eng, err := convert.New(ctx, cfg, log)             // once, at start-up
//	dir, cleanup, err := convert.NewWorkDir("")        // per job
//	defer cleanup()
//	// download the object to filepath.Join(dir, "input")
//	typ, err := sniff.File(input)                       // never trust name or Content-Type
//	p, err := eng.Select(key, typ.MIME)                 // unsupported_format if none
//	for _, spec := range p.Outputs {                    // independent steps
//		out, err := eng.Convert(ctx, convert.Request{InputPath: input, WorkDir: dir, Output: spec})
//		// upload out.Path to converted/{app}/{channel}/{jobId}/{spec.FileName()}
//	}
//
// On failure, [CodeOf](err) is the code for the job.failed event and
// err.Error() its message (paths inside the work dir are made relative, so
// it can be shown to the uploader). A canceled ctx is not a failure: the
// error wraps context.Canceled and the job should be retried later.
//
// # Safety
//
// Every input is hostile until converted. Each tool runs:
//   - from argv, never through a shell, in its own process group that is
//     killed as a whole on timeout (and after exit), with Pdeathsig so it
//     dies with Herald;
//   - with a minimal environment (no credentials), TMPDIR and cwd in the
//     job's work dir, stdin from /dev/null;
//   - under [Limits] set through util-linux prlimit: address space
//     (RLIMIT_AS, default 2 GiB), CPU time (RLIMIT_CPU, default the
//     timeout) and file size (RLIMIT_FSIZE, default 1 GiB), at niceness
//     10, within a wall-clock timeout; each can be set per pipeline and
//     per output;
//   - with only a bounded tail of its output kept.
//
// Command outputs run the same way. Their argv comes from the config with
// the placeholders {input}, {output}, {outputDir} and {format} replaced in
// one pass, each within its own argument, so no file name can add
// arguments or reach a shell. The command gets a private directory (its
// cwd, HOME and TMPDIR) holding a copy of the input and an empty output
// directory, and only the environment its Env allow-list names. What it
// writes must be regular files whose sniffed type is the declared format
// (else wrong_output_format); they are probed for size or duration like
// built-in outputs. Exit statuses map to failure codes through ExitCodes
// and the defaults (65 corrupt_input, 124 timeout); hitting the CPU-time
// limit is a timeout.
//
// Images: the type is sniffed from magic bytes and must be claimed by the
// expected libvips loader. For JPEG, PNG, GIF, WebP, TIFF and HEIF/AVIF the
// tools run with VIPS_BLOCK_UNTRUSTED=1, so libvips cannot hand the bytes to
// ImageMagick or another loader it marks untrusted. PDF (poppler), SVG
// (librsvg) and PSD (ImageMagick) use loaders libvips marks untrusted; for
// them vipsheader first proves that exactly that loader claims the file.
// The declared size is checked against Config.MaxPixels before any pixel
// is decoded (too_large), and decoding uses fail-on=error, so truncated
// data fails as corrupt_input instead of producing a half-grey thumbnail.
// librsvg does not fetch network resources and only reads files next to the
// SVG, and the SVG sits alone in the job's work dir.
//
// Audio: ffmpeg and ffprobe get a fixed demuxer chosen from the sniffed
// type and -protocol_whitelist file, so a playlist-like input cannot make
// them open other files or the network; the duration is checked against
// Config.MaxDuration before transcoding.
package convert
