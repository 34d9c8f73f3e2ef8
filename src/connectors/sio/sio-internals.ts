import { Writable } from 'node:stream';
import type { Socket } from 'socket.io';
import { WS_OPCODE, encodeServerFrame, encodeServerFrameHeader } from '../ws-frames.js';

/**
 * The few places where this connector relies on socket.io and engine.io details
 * beyond their documented API (docs/conventions.md §3: "that use stays in one file, with a test
 * that fails loudly when the library changes": test/connectors/sio/sio-internals.test.ts).
 * Checked against socket.io 4.8 / engine.io 6.6.
 */

/**
 * The socket.io EVENT packet for the main namespace, without an ack id: the packet
 * type digit `2` then the JSON array `[event, ...args]`. socket.io protocol v5 (our
 * v4 server) and v4 (the socket.io 2.x clients we accept over EIO3) encode it the
 * same way. This is what `socket.emit(event, ...args)` hands to engine.io, and what
 * socket.io's own broadcasts encode once and write to many sockets
 * (`Client#writeToEngine`); we do the same for the Pomelo pushes.
 */
export function encodeEventPacket(event: string, arg: string): string {
  return `2${JSON.stringify([event, arg])}`;
}

/**
 * Bytes the `ws` WebSocket under an engine.io websocket transport holds (its
 * `bufferedAmount`: what ws has not yet handed to the kernel). engine.io keeps the
 * ws instance as `transport.socket`; 0 for the polling transport, whose sent bytes
 * live in the HTTP response.
 */
export function wsBufferedAmount(socket: Socket): number {
  const transport: unknown = socket.conn.transport;
  if (typeof transport !== 'object' || transport === null) return 0;
  const ws: unknown = Reflect.get(transport, 'socket');
  if (typeof ws !== 'object' || ws === null) return 0;
  const amount: unknown = Reflect.get(ws, 'bufferedAmount');
  return typeof amount === 'number' ? amount : 0;
}

/**
 * The net.Socket under the `ws` WebSocket of an engine.io websocket transport (ws keeps
 * it as `_socket`), so that a flush can be corked with the other writes of the turn
 * (write-coalescer.ts); undefined for polling, or when either library moved it.
 */
export function wsTransportSocket(socket: Socket): Writable | undefined {
  const transport: unknown = socket.conn.transport;
  if (typeof transport !== 'object' || transport === null) return undefined;
  const ws: unknown = Reflect.get(transport, 'socket');
  if (typeof ws !== 'object' || ws === null) return undefined;
  const raw: unknown = Reflect.get(ws, '_socket');
  return raw instanceof Writable ? raw : undefined;
}

/**
 * The socket's table of ack callbacks waiting for the client (socket.io keeps one
 * entry per `emit` with a callback until the client answers: `Socket#acks`, a Map in
 * insertion order, i.e. oldest first). Undefined when socket.io no longer has it.
 */
export function pendingAckCallbacks(socket: Socket): Map<unknown, unknown> | undefined {
  const acks: unknown = Reflect.get(socket, 'acks');
  return acks instanceof Map ? acks : undefined;
}

/**
 * engine.io's polling transport, closed by the server while the client has no GET
 * pending, arms a 30 s timer (`closeTimeout`) to wait for a GET that would carry the
 * close packet, and keeps it even when the session ends another way (the client
 * posts its own close after our DISCONNECT, or the server shuts down: engine.io
 * skips a transport already "closing"). The timer is not unref'ed: it holds the
 * transport for 30 s and keeps a process that shuts down alive that long. Runs the
 * pending close now; a no-op for any other transport or state.
 */
export function settlePendingPollingClose(engineSocket: Socket['conn']): void {
  const transport: unknown = engineSocket.transport;
  if (typeof transport !== 'object' || transport === null) return;
  const pending: unknown = Reflect.get(transport, 'shouldClose');
  if (typeof pending !== 'function') return;
  Reflect.set(transport, 'shouldClose', null);
  Reflect.apply(pending, transport, []);
}

/**
 * engine.io packet options carrying the packet's whole WebSocket frame, built once:
 * engine.io's websocket transport writes `wsPreEncodedFrame` (a list of Buffers,
 * header first) to its ws socket instead of encoding the packet and framing it per
 * socket. This is the hook socket.io's own room broadcasts use
 * (socket.io-adapter `_encode`); other transports (polling) ignore it and send the
 * packet string. engine.io sets `compress` on the options it is given, so it is set
 * here already: the object is shared by every recipient of a broadcast.
 */
export interface PreframedOptions {
  readonly wsPreEncodedFrame: readonly Buffer[];
  compress: boolean;
}

/** The options for a socket.io packet written to many sockets: its engine.io MESSAGE frame, built once. */
export function preframedOptions(packet: string): PreframedOptions {
  // "4": the engine.io MESSAGE packet type, then the socket.io packet (EIO3 and EIO4 alike).
  return { wsPreEncodedFrame: [encodeServerFrame(`4${packet}`, WS_OPCODE.text)], compress: true };
}

/** Writes an encoded socket.io packet with its pre-built frame, as socket.io's broadcasts do. */
export function writePreframedPacket(socket: Socket, packet: string, options: PreframedOptions): void {
  socket.conn.write(packet, options);
}

/**
 * An EVENT packet that asks for an ack, written with a frame whose only per-socket
 * part is its head: the ws header, `42` and the ack id; the `[event, ...args]` JSON
 * after it is one Buffer shared by every recipient. Does what `socket.emit(event,
 * ...args, ack)` does for the main namespace: takes the next id from
 * `Namespace#_ids`, registers `ack` in `Socket#acks`, and hands the packet
 * `2<id><json>` to engine.io — without serialising the arguments per socket.
 * Returns false (nothing written) when those internals are not there; the caller then
 * emits. Not for sockets of another namespace (their packets carry `/nsp,`), nor
 * with `connectionStateRecovery` or outgoing listeners, which the connector does not use.
 */
export function writeAckedEvent(socket: Socket, json: string, jsonBytes: Buffer, ack: (...args: unknown[]) => void): boolean {
  const acks = pendingAckCallbacks(socket);
  const nsp: unknown = socket.nsp;
  if (acks === undefined || socket.nsp.name !== '/') return false;
  const id: unknown = Reflect.get(nsp as object, '_ids');
  if (typeof id !== 'number') return false;
  if (socket.conn.readyState !== 'open') return true; // socket.io drops packets for a closing client too
  Reflect.set(nsp as object, '_ids', id + 1);
  acks.set(id, ack);
  const idText = String(id);
  // engine.io "4" + socket.io "2" + id, then the shared JSON.
  const prefixLength = 2 + idText.length;
  const { buf, headerLength } = encodeServerFrameHeader(prefixLength + jsonBytes.length, WS_OPCODE.text, prefixLength);
  buf[headerLength] = 0x34;
  buf[headerLength + 1] = 0x32;
  buf.write(idText, headerLength + 2, 'latin1');
  const options: PreframedOptions = { wsPreEncodedFrame: [buf, jsonBytes], compress: true };
  socket.conn.write(`2${idText}${json}`, options);
  return true;
}
