import type { Writable } from 'node:stream';

/**
 * Coalesces a socket's writes within one turn of the event loop into one system call
 * (docs/conventions.md §5, "Batch writes"). The first push written to a socket in a turn corks it;
 * every socket corked so far is uncorked together in `setImmediate`, after the poll
 * phase, so what was written meanwhile goes out as one `writev`.
 *
 * Why: writing to a TCP socket is most of what a delivery costs (the kernel's send
 * path: ~80 % of the server's CPU in a fan-out profile, `writeBuffer`). When pushes
 * arrive faster than one fan-out takes — exactly when CPU per delivery matters — the
 * HTTP requests that came in during a fan-out are handled in the same poll phase, and
 * every socket gets all of them in one write instead of one write each. A push that
 * arrives alone waits only until the end of the current turn (no timer).
 *
 * No per-socket state: a socket whose `writableCorked` is not 0 was corked by us in
 * this turn (the libraries under us cork and uncork within one call). Corked bytes
 * count in `writableLength`, so the slow-consumer policy sees them; `end()` uncorks
 * and `destroy()` drops them, as for any buffered bytes.
 */
const corked: Writable[] = [];
let scheduled = false;

/** Corks `socket` until the end of this turn of the event loop, unless it is already. */
export function corkForTurn(socket: Writable): void {
  if (socket.writableCorked !== 0) return;
  socket.cork();
  corked.push(socket);
  if (!scheduled) {
    scheduled = true;
    setImmediate(uncorkAll);
  }
}

function uncorkAll(): void {
  scheduled = false;
  // A socket corked while this runs (a write from a 'drain' or error handler) waits for the next turn.
  for (const socket of corked.splice(0, corked.length)) {
    if (socket.writableCorked !== 0) socket.uncork();
  }
}

/** Sockets corked and not yet flushed (tests). */
export function corkedCount(): number {
  return corked.length;
}
