import type { Socket } from 'socket.io';

/**
 * The few places where this connector relies on socket.io and engine.io details
 * beyond their documented API (STYLE §3: "that use stays in one file, with a test
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
