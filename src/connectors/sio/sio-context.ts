import type { Socket } from 'socket.io';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import type { DeadlineWheel } from '../deadline-wheel.js';
import type { NativeSioEncoder, PomeloSioEncoder } from './sio-encoders.js';
import type { SioConnection } from './sio-connection.js';

/** What every socket.io connection of one listener shares (one object, not one per connection). */
export interface SioContext {
  readonly hub: Hub;
  readonly log: Logger;
  readonly pomeloEncoder: PomeloSioEncoder;
  readonly nativeEncoder: NativeSioEncoder;
  /** Enter deadlines and close grace periods of every connection. */
  readonly wheel: DeadlineWheel<SioConnection>;
  /** Live connections by their socket; a connection removes itself on disconnect. */
  readonly connections: Map<Socket, SioConnection>;
  /** Milliseconds a socket has to enter. */
  readonly enterTimeoutMs: number;
}
