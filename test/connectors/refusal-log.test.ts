import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REFUSAL_LOG_INTERVAL_MS, refusalReporter } from '../../src/connectors/refusal-log.js';
import { readOpenFilesLimit } from '../../src/connectors/descriptors.js';
import { ConnectionLog, createLogger, type Logger } from '../../src/log.js';

describe('refusalReporter', () => {
  it('counts every refusal and logs a few lines per listener and reason, saying how many came meanwhile', () => {
    const lines: Record<string, unknown>[] = [];
    const log = { warn: (fields: Record<string, unknown>) => lines.push(fields) } as unknown as Logger;
    const counted = new Map<string, number>();
    const clock = { now: 1_000_000 };
    const report = refusalReporter(log, (l, c) => counted.set(`${l} ${c}`, (counted.get(`${l} ${c}`) ?? 0) + 1), () => clock.now);
    for (let i = 0; i < 1000; i++) {
      report('http', 'LIMIT_CONNECTIONS_PER_IP', '10.0.0.1');
      clock.now += 1;
    }
    report('sio', 'LIMIT_PENDING', '10.0.0.2');
    assert.deepEqual(Object.fromEntries(counted), { 'http LIMIT_CONNECTIONS_PER_IP': 1000, 'sio LIMIT_PENDING': 1 });
    assert.equal(lines.length, 2, 'the first of each kind at once, the rest held back');
    clock.now += REFUSAL_LOG_INTERVAL_MS;
    report('http', 'LIMIT_CONNECTIONS_PER_IP', '10.0.0.1');
    assert.equal(lines.length, 3);
    assert.deepEqual(
      { listener: lines[2]!['listener'], code: lines[2]!['code'], refused: lines[2]!['refused'], remote: lines[2]!['remote'] },
      { listener: 'http', code: 'LIMIT_CONNECTIONS_PER_IP', refused: 1000, remote: '10.0.0.1' },
      '999 held back plus this one',
    );
  });
});

describe('readOpenFilesLimit', () => {
  it('reads the soft limit of /proc/self/limits; unknown or unlimited is undefined', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shaddock-limits-'));
    try {
      const file = join(dir, 'limits');
      writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n');
      assert.equal(readOpenFilesLimit(file), 1024);
      writeFileSync(file, 'Max open files            unlimited            unlimited            files\n');
      assert.equal(readOpenFilesLimit(file), undefined);
      assert.equal(readOpenFilesLimit(join(dir, 'missing')), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok((readOpenFilesLimit() ?? 0) > 0, 'this Linux process has one');
  });
});

describe('ConnectionLog and the limits', () => {
  it('writes a connection refused by the admission limits at debug (the limits report those in bulk), other refusals at its level', () => {
    const lines: { level: number; code: string }[] = [];
    const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line) as { level: number; code: string }) });
    const connections = new ConnectionLog(log, 'info');
    for (let i = 0; i < 100; i++) connections.refused({ connector: 'hybrid-tcp', code: 'LIMIT_CONNECTIONS_PER_IP', message: 'too many', remoteAddress: '10.0.0.1' });
    connections.refused({ connector: 'mqtt', code: 'LIMIT_DESCRIPTORS', message: 'full' });
    connections.refused({ connector: 'ws', code: 'AUTH_FAILED', message: 'wrong secret' });
    assert.deepEqual(
      lines.map((l) => l.code),
      ['AUTH_FAILED'],
    );
  });
});
