// Small media files made in memory for the tests (PNG, TIFF, PSD, WAV), so the
// tests need no fixtures and no image tools. Pixel content is a gradient that
// makes thumbnails recognisable in screenshots.

import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { deflateSync } from 'node:zlib';

/** Pixel colour at (x, y) of a w×h gradient: [r, g, b]. */
function gradient(x, y, w, h) {
  return [Math.round((255 * x) / Math.max(1, w - 1)), Math.round((255 * y) / Math.max(1, h - 1)), 160];
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An 8-bit RGB PNG. */
export function makePNG(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < w; x++) raw.set(gradient(x, y, w, h), row + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // depth 8, colour type RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * The header of an uncompressed little-endian baseline TIFF of w×h pixels
 * with `samples` 8-bit samples each (3 RGB, 4 RGBA), the pixels following
 * it in one strip of w*h*samples bytes.
 */
function tiffHeader(w, h, samples) {
  const bytes = w * h * samples;
  const entries = [
    [256, 4, 1, w], // ImageWidth LONG
    [257, 4, 1, h], // ImageLength
    [258, 3, samples, 'bps'], // BitsPerSample SHORT[samples] -> offset
    [259, 3, 1, 1], // Compression none
    [262, 3, 1, 2], // Photometric RGB
    [273, 4, 1, 'strip'], // StripOffsets
    [277, 3, 1, samples], // SamplesPerPixel
    [278, 4, 1, h], // RowsPerStrip
    [279, 4, 1, bytes], // StripByteCounts
    [282, 5, 1, 'res'], // XResolution RATIONAL
    [283, 5, 1, 'res'], // YResolution
    [284, 3, 1, 1], // PlanarConfiguration chunky
    [296, 3, 1, 2], // ResolutionUnit inch
  ];
  if (samples === 4) entries.push([338, 3, 1, 2]); // ExtraSamples: unassociated alpha
  const ifdOffset = 8;
  const ifdSize = 2 + entries.length * 12 + 4;
  const bpsOffset = ifdOffset + ifdSize;
  const resOffset = bpsOffset + 2 * samples;
  const stripOffset = resOffset + 8;
  const head = Buffer.alloc(stripOffset);
  head.write('II', 0, 'latin1');
  head.writeUInt16LE(42, 2);
  head.writeUInt32LE(ifdOffset, 4);
  head.writeUInt16LE(entries.length, ifdOffset);
  entries.forEach(([tag, type, count, value], i) => {
    const at = ifdOffset + 2 + i * 12;
    head.writeUInt16LE(tag, at);
    head.writeUInt16LE(type, at + 2);
    head.writeUInt32LE(count, at + 4);
    const v = { bps: bpsOffset, strip: stripOffset, res: resOffset }[value] ?? value;
    if (type === 3 && count === 1) head.writeUInt16LE(v, at + 8);
    else head.writeUInt32LE(v, at + 8);
  });
  head.writeUInt32LE(0, ifdOffset + 2 + entries.length * 12); // no next IFD
  for (let i = 0; i < samples; i++) head.writeUInt16LE(8, bpsOffset + i * 2);
  head.writeUInt32LE(72, resOffset);
  head.writeUInt32LE(1, resOffset + 4);
  return head;
}

/** An uncompressed little-endian baseline RGB TIFF. */
export function makeTIFF(w, h) {
  const pixels = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) pixels.set(gradient(x, y, w, h), (y * w + x) * 3);
  return Buffer.concat([tiffHeader(w, h, 3), pixels]);
}

/**
 * Writes a w×h RGBA TIFF to `path` a row at a time (files of hundreds of
 * MiB never sit in memory) and returns its size in bytes.
 */
export async function writeTIFF(path, w, h) {
  const out = createWriteStream(path);
  const write = (buf) => (out.write(buf) ? Promise.resolve() : once(out, 'drain'));
  const head = tiffHeader(w, h, 4);
  await write(head);
  // The gradient changes every 64 rows, so a band is one buffer.
  const band = 64;
  for (let y = 0; y < h; y += band) {
    const rows = Math.min(band, h - y);
    const row = Buffer.alloc(w * 4);
    for (let x = 0; x < w; x++) row.set([...gradient(x, y, w, h), 255], x * 4);
    const buf = Buffer.alloc(row.length * rows);
    for (let r = 0; r < rows; r++) row.copy(buf, r * row.length);
    await write(buf);
  }
  out.end();
  await finished(out);
  return head.length + w * h * 4;
}

/** A flat 8-bit RGB Photoshop file (no layers, raw image data). */
export function makePSD(w, h) {
  const header = Buffer.alloc(26);
  header.write('8BPS', 0, 'latin1');
  header.writeUInt16BE(1, 4); // version
  header.writeUInt16BE(3, 12); // channels
  header.writeUInt32BE(h, 14);
  header.writeUInt32BE(w, 18);
  header.writeUInt16BE(8, 22); // depth
  header.writeUInt16BE(3, 24); // RGB
  const sections = Buffer.alloc(12); // colour mode data, image resources, layer+mask: all empty
  const compression = Buffer.from([0, 0]); // raw
  const planes = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [r, g, b] = gradient(x, y, w, h);
      const i = y * w + x;
      planes[i] = r;
      planes[w * h + i] = g;
      planes[2 * w * h + i] = b;
    }
  }
  return Buffer.concat([header, sections, compression, planes]);
}

/** A mono 16-bit PCM WAV of a sine tone. */
export function makeWAV(seconds = 1, freq = 440, rate = 22050) {
  const n = Math.round(seconds * rate);
  const data = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const fade = Math.min(1, i / 500, (n - i) / 500);
    data.writeInt16LE(Math.round(12000 * fade * Math.sin((2 * Math.PI * freq * i) / rate)), i * 2);
  }
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}
