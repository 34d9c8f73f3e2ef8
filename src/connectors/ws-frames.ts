import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { corkForTurn } from './write-coalescer.js';

/**
 * Pre-framed WebSocket broadcast: a server frame (RFC 6455 §5.2: FIN, opcode, length,
 * no mask — §5.1: a server never masks) built once per message and written as the
 * same Buffer to every socket, instead of `ws.send` framing it again per socket
 * (a header Buffer, an options object and a corked two-part write per recipient).
 *
 * Writing a frame under `ws` relies on `ws` internals, and every such use is in this
 * file (docs/conventions.md §3). Checked against ws 8.23: `WebSocket#_socket` (the net.Socket),
 * `WebSocket#_sender` (`_state` 0 = DEFAULT, i.e. not deflating and not reading a
 * Blob; `_queue`, sends waiting behind such a step; `_firstFragment`, false in the
 * middle of a fragmented message) and `WebSocket#_extensions`. The frame goes to the
 * socket only when `ws` itself would write straight to it: OPEN, nothing queued, not
 * inside a fragmented message, no permessage-deflate. Otherwise it falls back to
 * `ws.send` with the payload, so ordering and `ws`'s own state stay right.
 * `bufferedAmount` (socket `writableLength` + sender `_bufferedBytes`) counts the bytes
 * written here like any other, so the slow-consumer policy sees them.
 * test/connectors/ws-frames.test.ts fails loudly when a `ws` upgrade changes any of it.
 */

/** RFC 6455 §5.2 opcodes of data frames. */
export const WS_OPCODE = { text: 0x1, binary: 0x2 } as const;
export type WsOpcode = (typeof WS_OPCODE)[keyof typeof WS_OPCODE];

/** ws's `Sender` state constants (lib/sender.js): 0 is DEFAULT. */
const SENDER_DEFAULT = 0;
/** ws's `PerMessageDeflate.extensionName`. */
const DEFLATE = 'permessage-deflate';
/** `WebSocket.OPEN`. */
const OPEN = 1;

/**
 * A whole unmasked server data frame with FIN set: header and payload in one Buffer,
 * safe to share among recipients (never mutated after this returns). A string payload
 * is written as UTF-8 straight into the frame (one copy, not two).
 */
export function encodeServerFrame(payload: Buffer | string, opcode: WsOpcode): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const header = frameHeaderLength(length);
  const frame = Buffer.allocUnsafe(header + length);
  writeFrameHeader(frame, opcode, length, header);
  if (typeof payload === 'string') frame.write(payload, header, 'utf8');
  else payload.copy(frame, header);
  return frame;
}

/**
 * A frame header alone, for a frame whose payload is written after it in parts (a
 * per-socket prefix and a shared body): `extra` bytes of room follow the header for
 * the caller to fill.
 */
export function encodeServerFrameHeader(payloadLength: number, opcode: WsOpcode, extra = 0): { readonly buf: Buffer; readonly headerLength: number } {
  const header = frameHeaderLength(payloadLength);
  const buf = Buffer.allocUnsafe(header + extra);
  writeFrameHeader(buf, opcode, payloadLength, header);
  return { buf, headerLength: header };
}

/** RFC 6455 §5.2: 7-bit length, or 126 + 16-bit, or 127 + 64-bit. */
function frameHeaderLength(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

function writeFrameHeader(buf: Buffer, opcode: WsOpcode, length: number, header: number): void {
  buf[0] = 0x80 | opcode;
  if (header === 2) {
    buf[1] = length;
  } else if (header === 4) {
    buf[1] = 126;
    buf.writeUInt16BE(length, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    buf.writeUInt32BE(length >>> 0, 6);
  }
}

/** The payload of a frame made by `encodeServerFrame` (a view, no copy). */
export function framePayload(frame: Buffer): Buffer {
  const len7 = frame[1]! & 0x7f;
  return frame.subarray(len7 < 126 ? 2 : len7 === 126 ? 4 : 10);
}

/** The opcode of a frame made by `encodeServerFrame`. */
export function frameOpcode(frame: Buffer): number {
  return frame[0]! & 0x0f;
}

/** What this file reads of a server-side `ws` WebSocket. */
interface WsInternals {
  readonly _socket: Socket | null;
  readonly _sender: {
    readonly _state: number;
    readonly _queue: readonly unknown[];
    readonly _firstFragment: boolean;
    readonly _bufferedBytes: number;
  } | null;
  readonly _extensions: Readonly<Record<string, unknown>>;
}

/**
 * Why `ws`'s internals are not what this file relies on, for an OPEN server-side
 * WebSocket; undefined when they are. The test calls it on a live socket; at run time
 * the first OPEN socket decides for the whole process.
 */
export function wsInternalsProblem(ws: WebSocket): string | undefined {
  const w = ws as unknown as Partial<Record<keyof WsInternals, unknown>>;
  const socket = w._socket;
  if (typeof socket !== 'object' || socket === null || typeof (socket as Partial<Socket>).write !== 'function') {
    return 'WebSocket#_socket is not a writable socket';
  }
  if (typeof (socket as Partial<Socket>).writableLength !== 'number') return 'WebSocket#_socket.writableLength is not a number';
  const sender = w._sender;
  if (typeof sender !== 'object' || sender === null) return 'WebSocket#_sender is missing';
  const s = sender as Record<string, unknown>;
  if (typeof s['_state'] !== 'number') return 'Sender#_state is not a number';
  if (!Array.isArray(s['_queue'])) return 'Sender#_queue is not an array';
  if (typeof s['_firstFragment'] !== 'boolean') return 'Sender#_firstFragment is not a boolean';
  if (typeof s['_bufferedBytes'] !== 'number') return 'Sender#_bufferedBytes is not a number';
  if (typeof w._extensions !== 'object' || w._extensions === null) return 'WebSocket#_extensions is not an object';
  return undefined;
}

/** Decided by the first OPEN socket written to: whether the internals are as expected. */
let internalsOk: boolean | undefined;

/**
 * Writes a frame made by `encodeServerFrame` to a server-side WebSocket: straight to
 * its socket when `ws` would write there at once, through `ws.send` otherwise. Does
 * nothing unless the WebSocket is OPEN (as `ws.send` would refuse).
 */
export function sendPreframed(ws: WebSocket, frame: Buffer): void {
  if (ws.readyState !== OPEN) return;
  internalsOk ??= wsInternalsProblem(ws) === undefined;
  if (internalsOk) {
    const w = ws as unknown as WsInternals;
    const sender = w._sender!;
    if (sender._state === SENDER_DEFAULT && sender._queue.length === 0 && sender._firstFragment && w._extensions[DEFLATE] === undefined) {
      const socket = w._socket!;
      corkForTurn(socket); // with the other pushes of this turn, in one writev
      socket.write(frame);
      return;
    }
  }
  ws.send(framePayload(frame), { binary: frameOpcode(frame) === WS_OPCODE.binary });
}

/** For tests: forget the process-wide verdict on the internals. */
export function resetWsInternalsVerdict(): void {
  internalsOk = undefined;
}
