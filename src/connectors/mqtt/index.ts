export { MqttConnector, type MqttConnectorOptions } from './mqtt-connector.js';
export { MqttEncoder, MqttPush } from './mqtt-encoder.js';
