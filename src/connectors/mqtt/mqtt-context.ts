import type { LinkedSet } from '../linked-set.js';
import type { Logger } from '../../log.js';
import type { Hub } from '../../hub/hub.js';
import type { DeadlineWheel } from '../deadline-wheel.js';
import type { MqttEncoder } from './mqtt-encoder.js';
import type { MqttConnection } from './mqtt-connection.js';

/** What every MQTT connection of one listener shares (one object, not one per connection). */
export interface MqttContext {
  readonly hub: Hub;
  readonly log: Logger;
  readonly encoder: MqttEncoder;
  /** CONNECT deadlines, keep-alive deadlines and close grace periods. */
  readonly wheel: DeadlineWheel<MqttConnection>;
  /** Open connections; a connection removes itself through `closed`. */
  readonly connections: LinkedSet<MqttConnection>;
  /** Called once by a connection when its socket has closed. */
  closed(conn: MqttConnection): void;
  /** Largest packet accepted from a peer, whole packet, bytes. */
  readonly maxPacketBytes: number;
  readonly connectTimeoutMs: number;
  /** MQTT 5 CONNACK Receive Maximum: QoS 1/2 PUBLISHes a client may have unanswered. */
  readonly receiveMaximum: number;
}
