import { allocateConnectionId, type Connection, type ConnectorName, type PushEncoder } from '../../src/hub/connection.js';
import type { StoredMessage } from '../../src/store/store.js';

export interface Encoded {
  readonly kind: 'message' | 'event';
  readonly event: string;
  readonly body: unknown;
}

/** An encoder that counts its calls, to prove a broadcast is encoded once per format. */
export class CountingEncoder implements PushEncoder<Encoded> {
  calls = 0;
  encodeMessage(msg: StoredMessage): Encoded {
    this.calls++;
    return { kind: 'message', event: msg.event, body: { msg: msg.data, id: msg.id } };
  }
  encodeEvent(event: string, body: unknown): Encoded {
    this.calls++;
    return { kind: 'event', event, body };
  }
}

/** A connection with no socket: records what the hub wrote and how it was closed. */
export class FakeConnection implements Connection<Encoded> {
  readonly id = allocateConnectionId();
  readonly connectedAt = Date.now();
  readonly remoteAddress = '127.0.0.1';
  readonly written: Encoded[] = [];
  closedWith: string | undefined;
  bufferedBytes = 0;
  /** Bytes each write adds to bufferedBytes (a peer that never reads). */
  growPerWrite = 0;

  constructor(
    readonly encoder: PushEncoder<Encoded>,
    readonly connector: ConnectorName = 'hybrid-tcp',
  ) {}

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  write(encoded: Encoded): void {
    if (this.closed) return;
    this.written.push(encoded);
    this.bufferedBytes += this.growPerWrite;
  }

  close(reason: string): void {
    this.closedWith ??= reason;
  }

  events(name: string): unknown[] {
    return this.written.filter((w) => w.event === name).map((w) => w.body);
  }
}
