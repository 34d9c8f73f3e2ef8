import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { tlsServerOptions, type TlsListenOptions } from '../tls.js';

export type { TlsListenOptions };
export { tlsServerOptions };

/**
 * Connections the kernel may queue for us before we accept them (the listen(2) backlog;
 * Linux caps it at `net.core.somaxconn`, so the operator's setting decides). Node's
 * default, 511, overflows in a reconnect storm: every SYN dropped costs its client a
 * 1 s, then 3 s retransmission — in 10,000-connection storms here, connects took 1.3 s
 * at the median for that reason alone (`nstat`: TcpExtListenOverflows), not for CPU.
 */
export const LISTEN_BACKLOG = 65_535;

/** Listens and resolves with the bound port, or rejects with a clear error. */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const why = err.code === 'EADDRINUSE' ? `port ${port} on ${host} is already in use` : err.message;
      reject(new Error(why, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

/** Stops accepting and resolves when every connection is gone. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

/**
 * A stream listener: plain TCP, or TLS when `tls` is given. `onSocket` sees a socket
 * only once it can carry our protocol, so for TLS only after a completed handshake: a
 * failed or abandoned handshake never reaches a connector nor counts as a connection.
 */
export function createSocketServer(
  onSocket: (socket: Socket) => void,
  opts: { readonly tls?: TlsListenOptions | undefined; readonly log?: Logger; readonly name?: string } = {},
): Server {
  if (opts.tls === undefined) return createNetServer(onSocket);
  const server = createTlsServer(tlsServerOptions(opts.tls), onSocket);
  closeFailedHandshakes(server, opts.log, opts.name ?? 'tls');
  return server;
}

/**
 * Closes every socket whose TLS handshake fails (a plain-TCP client, a client that does
 * not trust us) or passes the deadline, with a debug line. tls.Server leaves the socket
 * open after a handshake timeout; https.Server closes it itself (a second destroy does
 * nothing), so the same listener serves both.
 */
export function closeFailedHandshakes(server: TlsServer, log: Logger | undefined, listener: string): void {
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    log?.debug({ listener, remote: socket.remoteAddress, code: err.code ?? 'TLS_HANDSHAKE_FAILED', reason: err.message }, 'TLS handshake failed');
    socket.destroy();
  });
}

/**
 * The peer's address of an accepted socket, read once. Node caches it on the socket
 * (`_peername`: an object and a string held for the socket's life, ~90 bytes a
 * connection); the connection keeps the string itself, so the cache is let go. Should
 * Node stop reading `_peername` this way, the only cost is the cache being rebuilt.
 */
export function peerAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  (socket as unknown as { _peername?: unknown })._peername = undefined;
  return address;
}

/**
 * The 'error' listener of an accepted socket, shared by every socket (no closure per
 * connection): the error ends it; its 'close' does the rest.
 */
export function destroyOnError(this: Socket): void {
  this.destroy();
}
