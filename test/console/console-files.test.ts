import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CONSOLE_DIST_DIR, serveConsoleFile } from '../../src/api/console-files.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

describe('console files', () => {
  // <tmp>/secret.txt next to <tmp>/dist: what a traversal would try to reach.
  let root: string;
  let dist: string;
  const INDEX = '<!doctype html><div id="root"></div>';
  const JS = 'console.log("console")';
  const SECRET = 'TOP-SECRET-CONTENT';

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'shaddock-console-files-'));
    dist = join(root, 'dist');
    mkdirSync(join(dist, 'assets'), { recursive: true });
    writeFileSync(join(dist, 'index.html'), INDEX);
    writeFileSync(join(dist, 'assets', 'index-AbC123.js'), JS);
    writeFileSync(join(dist, 'assets', 'index-AbC123.css'), 'body{}');
    writeFileSync(join(dist, 'robots.txt'), 'User-agent: *\n');
    writeFileSync(join(dist, '.env'), SECRET);
    writeFileSync(join(root, 'secret.txt'), SECRET);
    writeFileSync(join(root, 'dist-evil.txt'), SECRET);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('answers index.html for / with no-cache', () => {
    const f = serveConsoleFile(dist, '/');
    assert.ok(f);
    assert.equal(f.status, 200);
    assert.equal(f.contentType, 'text/html; charset=utf-8');
    assert.equal(f.cacheControl, 'no-cache');
    assert.equal(f.body.toString(), INDEX);
    assert.equal(f.headers['x-content-type-options'], 'nosniff');
    assert.equal(f.headers['x-frame-options'], 'DENY');
    assert.equal(f.headers['content-security-policy'], "frame-ancestors 'none'");
  });

  it('answers index.html for console routes (single-page app), also with a query', () => {
    for (const path of ['/apps', '/apps/0f5a-3c9e/clients', '/apps/x/history?before=3', '/index.html', '//apps//x/']) {
      const f = serveConsoleFile(dist, path);
      assert.ok(f, path);
      assert.equal(f.status, 200, path);
      assert.equal(f.body.toString(), INDEX, path);
    }
  });

  it('serves hashed assets with a year of immutable caching and the right type', () => {
    const js = serveConsoleFile(dist, '/assets/index-AbC123.js?v=2');
    assert.ok(js);
    assert.equal(js.status, 200);
    assert.equal(js.contentType, 'text/javascript; charset=utf-8');
    assert.equal(js.cacheControl, 'public, max-age=31536000, immutable');
    assert.equal(js.body.toString(), JS);
    const css = serveConsoleFile(dist, '/assets/index-AbC123.css');
    assert.equal(css?.contentType, 'text/css; charset=utf-8');
    const txt = serveConsoleFile(dist, '/robots.txt');
    assert.equal(txt?.cacheControl, 'no-cache', 'files outside assets/ are not hashed');
    assert.equal(txt?.contentType, 'text/plain; charset=utf-8');
  });

  it('leaves missing files (with an extension, or under assets/) to the 404 handler', () => {
    assert.equal(serveConsoleFile(dist, '/assets/index-OLD.js'), undefined);
    assert.equal(serveConsoleFile(dist, '/favicon.ico'), undefined);
    assert.equal(serveConsoleFile(dist, '/assets/nothing'), undefined);
    assert.equal(serveConsoleFile(dist, '/assets'), undefined, 'a folder is not a file');
  });

  it('never serves a file outside the folder: traversal is a 400', () => {
    const attempts = [
      '/../secret.txt',
      '/assets/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2E%2E%2Fsecret.txt',
      '/assets/..%2F..%2Fsecret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/..%5csecret.txt',
      '/..\\secret.txt',
      '/%5c..%5csecret.txt',
      '/../dist-evil.txt',
      '/index.html%00.js',
      '/%E0%A4%A',
      'secret.txt',
    ];
    for (const path of attempts) {
      const f = serveConsoleFile(dist, path);
      assert.ok(f, path);
      assert.equal(f.status, 400, path);
      assert.ok(!f.body.toString().includes(SECRET), path);
    }
  });

  it('does not serve dot-files', () => {
    const f = serveConsoleFile(dist, '/.env');
    assert.ok(f === undefined || !f.body.toString().includes(SECRET));
  });

  it('says how to build the console when it is not built', () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    for (const path of ['/', '/apps/x/clients']) {
      const f = serveConsoleFile(empty, path);
      assert.ok(f);
      assert.equal(f.status, 503);
      assert.equal(f.cacheControl, 'no-store');
      assert.match(f.body.toString(), /npm run build:console/);
    }
    assert.equal(serveConsoleFile(empty, '/assets/index-AbC123.js'), undefined);
  });

  it('CONSOLE_DIST_DIR is console/dist at the repository root, from src/ and from dist/', async () => {
    assert.ok(isAbsolute(CONSOLE_DIST_DIR));
    assert.equal(CONSOLE_DIST_DIR, join(repoRoot, 'console', 'dist'));
    // The compiled module (npm run build) sits at the same depth, so it finds the same folder.
    const compiled = join(repoRoot, 'dist', 'api', 'console-files.js');
    if (existsSync(compiled)) {
      const mod = (await import(pathToFileURL(compiled).href)) as { CONSOLE_DIST_DIR: string };
      assert.equal(mod.CONSOLE_DIST_DIR, CONSOLE_DIST_DIR);
    }
  });
});
