/**
 * The publisher: pushes M messages of about S bytes to the target, either as fast as
 * they are accepted (a window of W pushes in flight, each next one sent when one is
 * answered) or at a set rate. Each payload carries its sequence number and send time
 * (protocol.ts). HTTP keeps W keep-alive connections; MQTT publishes at QoS 1 and
 * counts a PUBACK as accepted.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { monoUs } from './histogram.js';
import { mqttConnect, mqttPublishHeader } from './clients.js';
import { payloadMaker } from './protocol.js';
import { mqttPacketLength, Splitter } from './splitter.js';
import type { PushEndpoint } from './targets.js';

export interface PublishOptions {
  readonly runId: number;
  readonly messages: number;
  readonly size: number;
  /** Messages per second; 0 = as fast as accepted. */
  readonly rate: number;
  /** Pushes in flight at once (as fast as accepted) or at most (at a rate). */
  readonly window: number;
  /** Give up after this long, milliseconds. */
  readonly timeoutMs: number;
  readonly onProgress?: (accepted: number) => void;
}

export interface PublishResult {
  readonly sent: number;
  readonly accepted: number;
  readonly errors: number;
  /** The first few distinct error descriptions. */
  readonly errorSamples: readonly string[];
  readonly startUs: number;
  readonly endUs: number;
  /** Push request → answer, µs. */
  readonly acceptLatency: readonly number[];
}

interface Sender {
  send(seq: number, body: string, done: (err: string | undefined) => void): void;
  close(): void;
}

export async function publish(ep: PushEndpoint, opts: PublishOptions): Promise<PublishResult> {
  const sender = ep.kind === 'http' ? httpSender(ep, opts.window) : await mqttSender(ep);
  const make = payloadMaker(opts.runId, opts.size);
  const wrap = ep.kind === 'http' || ep.wrap;
  let sent = 0;
  let accepted = 0;
  let errors = 0;
  const samples = new Set<string>();
  const acceptLatency: number[] = [];
  const startUs = monoUs();
  let endUs = startUs;
  try {
    await new Promise<void>((resolve) => {
      let inflight = 0;
      let finished = false;
      const deadline = setTimeout(() => finish(), opts.timeoutMs);
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(deadline);
        clearInterval(ticker);
        endUs = monoUs();
        resolve();
      };
      const sendOne = (): void => {
        const seq = sent++;
        inflight++;
        const t = monoUs();
        const data = make(seq, t);
        sender.send(seq, wrap ? `{"data":${data}}` : data, (err) => {
          inflight--;
          if (err === undefined) {
            accepted++;
            if (acceptLatency.length < 100_000) acceptLatency.push(monoUs() - t);
          } else {
            errors++;
            if (samples.size < 5) samples.add(err);
          }
          opts.onProgress?.(accepted);
          if (accepted + errors >= opts.messages) finish();
          else if (opts.rate <= 0 && sent < opts.messages && !finished) sendOne();
        });
      };
      let ticker: NodeJS.Timeout | undefined;
      if (opts.rate <= 0) {
        for (let k = 0; k < Math.min(opts.window, opts.messages); k++) sendOne();
      } else {
        // Open loop: every 5 ms send what is due by now, up to the in-flight cap.
        ticker = setInterval(() => {
          const due = Math.min(opts.messages, Math.floor(((monoUs() - startUs) / 1e6) * opts.rate) + 1);
          while (sent < due && inflight < opts.window) sendOne();
        }, 5);
      }
      if (opts.messages === 0) finish();
    });
  } finally {
    sender.close();
  }
  return { sent, accepted, errors, errorSamples: [...samples], startUs, endUs, acceptLatency };
}

function httpSender(ep: Extract<PushEndpoint, { kind: 'http' }>, window: number): Sender {
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, window) });
  return {
    send(_seq, body, done) {
      const req = request(
        {
          host: ep.host,
          port: ep.port,
          path: ep.path,
          method: 'POST',
          agent,
          headers: { ...ep.headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const status = res.statusCode ?? 0;
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => {
            if (text.length < 300) text += s;
          });
          res.on('end', () => done(status >= 200 && status < 300 ? undefined : `HTTP ${status}: ${text.slice(0, 200)}`));
        },
      );
      req.on('error', (err) => done(err.message));
      req.end(body);
    },
    close() {
      agent.destroy();
    },
  };
}

/** An MQTT 3.1.1 publisher at QoS 1: the PUBACK is the answer. */
async function mqttSender(ep: Extract<PushEndpoint, { kind: 'mqtt' }>): Promise<Sender> {
  const socket: Socket = connect({ host: ep.host, port: ep.port });
  socket.setNoDelay(true);
  const pending = new Map<number, (err: string | undefined) => void>();
  let nextId = 1;
  let failure: string | undefined;
  const splitter = new Splitter(mqttPacketLength);
  let onConnack: ((rc: number) => void) | undefined;
  socket.on('data', (chunk: Buffer) =>
    splitter.push(chunk, (buf, start) => {
      const type = buf[start]! >> 4;
      if (type === 4) {
        const id = buf.readUInt16BE(start + 2);
        const cb = pending.get(id);
        pending.delete(id);
        cb?.(undefined);
      } else if (type === 2) {
        onConnack?.(buf[start + 3]!);
      }
    }),
  );
  const fail = (why: string): void => {
    failure ??= why;
    for (const cb of pending.values()) cb(why);
    pending.clear();
  };
  socket.on('error', (err) => fail(err.message));
  socket.on('close', () => fail('publisher connection closed'));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => socket.write(mqttConnect(`bench-publisher-${process.pid}`, ep.username, ep.password, 0)));
    socket.once('error', reject);
    onConnack = (rc) => (rc === 0 ? resolve() : reject(new Error(`publisher CONNACK return code ${rc}`)));
  });
  return {
    send(_seq, body, done) {
      if (failure !== undefined) {
        const why = failure;
        process.nextTick(() => done(why));
        return;
      }
      let id = nextId;
      // Packet ids 1..65535, never one still in flight (MQTT-2.3.1-2).
      while (pending.has(id)) id = (id % 65535) + 1;
      nextId = (id % 65535) + 1;
      pending.set(id, done);
      const payload = Buffer.from(body);
      socket.cork();
      socket.write(mqttPublishHeader(ep.topic, 1, id, payload.length));
      socket.write(payload);
      process.nextTick(() => socket.uncork());
    },
    close() {
      socket.end(Buffer.from([0xe0, 0x00]));
      socket.destroy();
    },
  };
}
