import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, databasePath, heartbeatTimeoutSeconds } from '../src/config.js';

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shaddock-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('has the documented defaults and is frozen', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.httpPort, 3001);
    assert.equal(c.hybridPort, 3011);
    assert.equal(c.dataDir, './data');
    assert.equal(heartbeatTimeoutSeconds(c), 50);
    assert.ok(databasePath(c).endsWith('/data/shaddock.db'));
    assert.ok(Object.isFrozen(c));
  });

  it('file < environment < flags', () => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ httpPort: 4000, hybridPort: 4011, host: '127.0.0.1', dataDir: '/from-file' }));
    const c = loadConfig({
      configFile: file,
      env: { SHADDOCK_HTTP_PORT: '5000', SHADDOCK_DATA: '/from-env' },
      flags: { dataDir: '/from-flag', logLevel: undefined },
    });
    assert.equal(c.host, '127.0.0.1'); // file
    assert.equal(c.hybridPort, 4011); // file
    assert.equal(c.httpPort, 5000); // env beats file
    assert.equal(c.dataDir, '/from-flag'); // flag beats env
  });

  it('SHADDOCK_CONFIG names the file', () => {
    const file = join(dir, 'env.json');
    writeFileSync(file, JSON.stringify({ heartbeatSeconds: 7 }));
    assert.equal(loadConfig({ env: { SHADDOCK_CONFIG: file } }).heartbeatSeconds, 7);
  });

  it('refuses bad values naming the setting', () => {
    assert.throws(() => loadConfig({ env: { SHADDOCK_HTTP_PORT: 'abc' } }), (e: ConfigError) => /SHADDOCK_HTTP_PORT must be a number/.test(e.message));
    assert.throws(() => loadConfig({ env: {}, flags: { httpPort: 70000 } }), (e: ConfigError) => /"httpPort"/.test(e.message));
    assert.throws(() => loadConfig({ env: {}, flags: { logLevel: 'loud' } }), (e: ConfigError) => /"logLevel"/.test(e.message));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{"httpPort": 1, "typo": true}');
    assert.throws(() => loadConfig({ env: {}, configFile: file }), (e: ConfigError) => /typo|Unrecognized/i.test(e.message));
    writeFileSync(file, '{nope');
    assert.throws(() => loadConfig({ env: {}, configFile: file }), (e: ConfigError) => /not valid JSON/.test(e.message));
    assert.throws(() => loadConfig({ env: {}, configFile: join(dir, 'missing.json') }), (e: ConfigError) => /cannot read config file/.test(e.message));
  });
});
