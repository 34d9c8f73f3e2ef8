/**
 * Just enough graphics for the benchmark chart, with no dependency: an RGB canvas with
 * rectangles and a 5×7 bitmap font of our own, written out as a PNG (RFC 2083:
 * signature, IHDR, one zlib IDAT of filter-0 scanlines, IEND, each chunk with its
 * CRC-32).
 */
import { deflateSync } from 'node:zlib';

export type Rgb = readonly [number, number, number];

/** 5×7 glyphs, rows top to bottom, '#' = ink. Characters not here draw as a box. */
const GLYPHS: Readonly<Record<string, string>> = {
  ' ': '..... ..... ..... ..... ..... ..... .....',
  A: '.###. #...# #...# ##### #...# #...# #...#',
  B: '####. #...# #...# ####. #...# #...# ####.',
  C: '.###. #...# #.... #.... #.... #...# .###.',
  D: '####. #...# #...# #...# #...# #...# ####.',
  E: '##### #.... #.... ####. #.... #.... #####',
  F: '##### #.... #.... ####. #.... #.... #....',
  G: '.###. #...# #.... #.### #...# #...# .####',
  H: '#...# #...# #...# ##### #...# #...# #...#',
  I: '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  J: '..### ...#. ...#. ...#. ...#. #..#. .##..',
  K: '#...# #..#. #.#.. ##... #.#.. #..#. #...#',
  L: '#.... #.... #.... #.... #.... #.... #####',
  M: '#...# ##.## #.#.# #.#.# #...# #...# #...#',
  N: '#...# #...# ##..# #.#.# #..## #...# #...#',
  O: '.###. #...# #...# #...# #...# #...# .###.',
  P: '####. #...# #...# ####. #.... #.... #....',
  Q: '.###. #...# #...# #...# #.#.# #..#. .##.#',
  R: '####. #...# #...# ####. #.#.. #..#. #...#',
  S: '.#### #.... #.... .###. ....# ....# ####.',
  T: '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  U: '#...# #...# #...# #...# #...# #...# .###.',
  V: '#...# #...# #...# #...# #...# .#.#. ..#..',
  W: '#...# #...# #...# #.#.# #.#.# #.#.# .#.#.',
  X: '#...# #...# .#.#. ..#.. .#.#. #...# #...#',
  Y: '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..',
  Z: '##### ....# ...#. ..#.. .#... #.... #####',
  a: '..... ..... .###. ....# .#### #...# .####',
  b: '#.... #.... #.##. ##..# #...# #...# ####.',
  c: '..... ..... .###. #.... #.... #...# .###.',
  d: '....# ....# .##.# #..## #...# #...# .####',
  e: '..... ..... .###. #...# ##### #.... .###.',
  f: '..##. .#..# .#... ###.. .#... .#... .#...',
  g: '..... .#### #...# #...# .#### ....# .###.',
  h: '#.... #.... #.##. ##..# #...# #...# #...#',
  i: '..#.. ..... .##.. ..#.. ..#.. ..#.. .###.',
  j: '...#. ..... ..##. ...#. ...#. #..#. .##..',
  k: '#.... #.... #..#. #.#.. ##... #.#.. #..#.',
  l: '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.',
  m: '..... ..... ##.#. #.#.# #.#.# #...# #...#',
  n: '..... ..... #.##. ##..# #...# #...# #...#',
  o: '..... ..... .###. #...# #...# #...# .###.',
  p: '..... ..... ####. #...# ####. #.... #....',
  q: '..... ..... .##.# #..## .#### ....# ....#',
  r: '..... ..... #.##. ##..# #.... #.... #....',
  s: '..... ..... .###. #.... .###. ....# ####.',
  t: '.#... .#... ###.. .#... .#... .#..# ..##.',
  u: '..... ..... #...# #...# #...# #..## .##.#',
  v: '..... ..... #...# #...# #...# .#.#. ..#..',
  w: '..... ..... #...# #...# #.#.# #.#.# .#.#.',
  x: '..... ..... #...# .#.#. ..#.. .#.#. #...#',
  y: '..... ..... #...# #...# .#### ....# .###.',
  z: '..... ..... ##### ...#. ..#.. .#... #####',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###.',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.',
  '2': '.###. #...# ....# ...#. ..#.. .#... #####',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###.',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#.',
  '5': '##### #.... ####. ....# ....# #...# .###.',
  '6': '..##. .#... #.... ####. #...# #...# .###.',
  '7': '##### ....# ...#. ..#.. .#... .#... .#...',
  '8': '.###. #...# #...# .###. #...# #...# .###.',
  '9': '.###. #...# #...# .#### ....# ...#. .##..',
  '.': '..... ..... ..... ..... ..... .##.. .##..',
  ',': '..... ..... ..... ..... .##.. ..#.. .#...',
  ':': '..... .##.. .##.. ..... .##.. .##.. .....',
  ';': '..... .##.. .##.. ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#.',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#...',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...##',
  _: '..... ..... ..... ..... ..... ..... #####',
  '=': '..... ..... ##### ..... ##### ..... .....',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#.',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#...',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#..',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..',
  '×': '..... #...# .#.#. ..#.. .#.#. #...# .....',
  µ: '..... ..... #...# #...# #..## ###.# #....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. .....',
  '[': '.###. .#... .#... .#... .#... .#... .###.',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###.',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..',
  "'": '..#.. ..#.. .#... ..... ..... ..... .....',
  '"': '.#.#. .#.#. ..... ..... ..... ..... .....',
  '·': '..... ..... ..... ..#.. ..... ..... .....',
  '@': '.###. #...# #.### #.#.# #.### #.... .###.',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.#',
  '~': '..... ..... .#... #.#.# ...#. ..... .....',
  '↓': '..#.. ..#.. ..#.. ..#.. #.#.# .###. ..#..',
};
const BOX = '##### #...# #...# #...# #...# #...# #####';

/** Advance per character at scale 1: 5 columns of ink and 1 of space. */
export const CHAR_W = 6;
export const CHAR_H = 7;

const glyphRows = new Map<string, number[]>();
function rows(ch: string): number[] {
  let r = glyphRows.get(ch);
  if (r === undefined) {
    r = (GLYPHS[ch] ?? BOX).split(' ').map((row) => [...row].reduce((acc, c) => (acc << 1) | (c === '#' ? 1 : 0), 0));
    glyphRows.set(ch, r);
  }
  return r;
}

export class Canvas {
  readonly width: number;
  readonly height: number;
  readonly #rgb: Uint8Array;

  constructor(width: number, height: number, background: Rgb = [255, 255, 255]) {
    this.width = width;
    this.height = height;
    this.#rgb = new Uint8Array(width * height * 3);
    this.fillRect(0, 0, width, height, background);
  }

  fillRect(x: number, y: number, w: number, h: number, color: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    for (let yy = y0; yy < y1; yy++) {
      let o = (yy * this.width + x0) * 3;
      for (let xx = x0; xx < x1; xx++) {
        this.#rgb[o++] = color[0];
        this.#rgb[o++] = color[1];
        this.#rgb[o++] = color[2];
      }
    }
  }

  static textWidth(text: string, scale = 1): number {
    return [...text].length * CHAR_W * scale - scale;
  }

  /** Draws text with its top-left corner at (x, y). */
  text(x: number, y: number, text: string, color: Rgb, scale = 1): void {
    let cx = Math.round(x);
    for (const ch of text) {
      const r = rows(ch);
      for (let row = 0; row < CHAR_H; row++) {
        const bits = r[row] ?? 0;
        for (let col = 0; col < 5; col++) {
          if ((bits >> (4 - col)) & 1) this.fillRect(cx + col * scale, Math.round(y) + row * scale, scale, scale, color);
        }
      }
      cx += CHAR_W * scale;
    }
  }

  /** Text centred on x. */
  textCentered(cx: number, y: number, text: string, color: Rgb, scale = 1): void {
    this.text(cx - Canvas.textWidth(text, scale) / 2, y, text, color, scale);
  }

  toPng(): Buffer {
    const stride = this.width * 3;
    const raw = Buffer.alloc((stride + 1) * this.height);
    for (let y = 0; y < this.height; y++) {
      raw[y * (stride + 1)] = 0; // filter: none
      raw.set(this.#rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
    }
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(this.width, 0);
    ihdr.writeUInt32BE(this.height, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // colour type: truecolour RGB
    ihdr[10] = 0; // deflate
    ihdr[11] = 0; // adaptive filtering
    ihdr[12] = 0; // no interlace
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw, { level: 9 })),
      chunk('IEND', Buffer.alloc(0)),
    ]);
  }
}

const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as PNG uses it) of the bytes. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export interface Bar {
  /** Up to two lines under the bar. */
  readonly label: string;
  readonly label2?: string;
  /** A small third line (the version). */
  readonly sublabel?: string;
  readonly value: number | undefined;
  readonly color: Rgb;
}

export interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly bars: readonly Bar[];
}

const INK: Rgb = [32, 32, 32];
const GRID: Rgb = [225, 225, 225];
const MUTED: Rgb = [110, 110, 110];

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Panels of vertical bars, one under the other, with a title and notes. */
export function barChart(title: string, notes: readonly string[], panels: readonly Panel[], width = 1100): Buffer {
  const panelH = 330;
  const top = 60 + notes.length * 14;
  const height = top + panels.length * panelH + 20;
  const c = new Canvas(width, height);
  c.text(20, 16, title, INK, 2);
  notes.forEach((n, k) => c.text(20, 44 + k * 14, n, MUTED, 1));
  panels.forEach((panel, k) => {
    const y0 = top + k * panelH;
    const plotLeft = 80;
    const plotRight = width - 20;
    const plotTop = y0 + 30;
    const plotBottom = y0 + panelH - 70;
    c.text(20, y0 + 6, `${panel.title} (${panel.unit})`, INK, 2);
    const max = niceMax(Math.max(0, ...panel.bars.map((b) => b.value ?? 0)));
    for (let g = 0; g <= 4; g++) {
      const y = plotBottom - ((plotBottom - plotTop) * g) / 4;
      c.fillRect(plotLeft, y, plotRight - plotLeft, 1, GRID);
      const label = fmt((max * g) / 4);
      c.text(plotLeft - 8 - Canvas.textWidth(label), y - 3, label, MUTED, 1);
    }
    c.fillRect(plotLeft, plotBottom, plotRight - plotLeft, 1, INK);
    const n = Math.max(1, panel.bars.length);
    const slot = (plotRight - plotLeft) / n;
    const barW = Math.min(70, slot * 0.6);
    panel.bars.forEach((b, i) => {
      const cx = plotLeft + slot * (i + 0.5);
      if (b.value !== undefined && Number.isFinite(b.value)) {
        const h = ((plotBottom - plotTop) * b.value) / max;
        c.fillRect(cx - barW / 2, plotBottom - h, barW, h, b.color);
        c.textCentered(cx, plotBottom - h - 20, fmt(b.value), INK, 2);
      } else {
        c.textCentered(cx, plotBottom - 20, 'n/a', MUTED, 2);
      }
      const fit = (t: string, scale: number): string => {
        const max = Math.max(1, Math.floor((slot - 4) / (CHAR_W * scale)));
        return t.length > max ? `${t.slice(0, max - 1)}~` : t;
      };
      const scale = slot >= 14 * CHAR_W * 2 ? 2 : 1;
      const lineH = CHAR_H * scale + 5;
      c.textCentered(cx, plotBottom + 8, fit(b.label, scale), INK, scale);
      if (b.label2 !== undefined) c.textCentered(cx, plotBottom + 8 + lineH, fit(b.label2, scale), INK, scale);
      if (b.sublabel !== undefined) c.textCentered(cx, plotBottom + 8 + 2 * lineH + 2, fit(b.sublabel, 1), MUTED, 1);
    });
  });
  return c.toPng();
}
