import type { LinkedSet } from '../linked-set.js';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import type { RouteDictionary } from '../../protocol/pomelo/dictionary.js';
import type { ParsedProtos } from '../../protocol/pomelo/protobuf.js';
import type { DeadlineWheel, ExpiringItem } from '../deadline-wheel.js';
import type { HybridEncoder } from './hybrid-encoder.js';
import type { HybridConnection } from './hybrid-connection.js';

/** What every hybrid connection of one listener shares (one object, not one per connection). */
export interface HybridContext {
  readonly hub: Hub;
  readonly log: Logger;
  readonly encoder: HybridEncoder;
  /** Handshake, heartbeat and close deadlines of every socket of the listener. */
  readonly wheel: DeadlineWheel<ExpiringItem>;
  readonly connections: LinkedSet<HybridConnection>;
  readonly heartbeatSeconds: number;
  readonly heartbeatTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly maxPackageBytes: number;
  readonly dictionary: RouteDictionary | undefined;
  readonly protos:
    | { readonly server: ParsedProtos; readonly client: ParsedProtos; readonly version: string }
    | undefined;
}
