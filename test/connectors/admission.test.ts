import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Admission, LimitError, addressKey, httpRefusal, type AdmissionLimits } from '../../src/connectors/admission.js';
import { ConfigError, loadConfig } from '../../src/config.js';

const OFF: AdmissionLimits = { maxConnectionsPerIp: 0, connectsPerSecondPerIp: 0, maxPendingConnections: 0, requestsPerSecond: 0 };

/** An admission on a clock the test moves by hand. */
function admission(limits: Partial<AdmissionLimits>): { a: Admission; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const a = new Admission({ ...OFF, ...limits }, () => clock.now);
  return { a, clock };
}

function refusal(fn: () => unknown): LimitError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LimitError, `expected a LimitError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('Admission', () => {
  it('counts open connections per address and refuses past the limit; a release makes room', () => {
    const { a } = admission({ maxConnectionsPerIp: 2 });
    const t1 = a.admit('10.0.0.1');
    a.admit('10.0.0.1');
    const err = refusal(() => a.admit('10.0.0.1'));
    assert.equal(err.code, 'LIMIT_CONNECTIONS_PER_IP');
    assert.match(err.reason, /^LIMIT_CONNECTIONS_PER_IP: /);
    // Other addresses are not affected.
    a.admit('10.0.0.2');
    t1.release();
    t1.release(); // idempotent: counts once
    assert.equal(a.openFrom('10.0.0.1'), 1);
    a.admit('10.0.0.1');
    a.close();
  });

  it('rate-limits connects per address with a bucket of twice the rate, refilled over time', () => {
    const { a, clock } = admission({ connectsPerSecondPerIp: 5 });
    for (let i = 0; i < 10; i++) a.admit('10.0.0.1').release();
    const err = refusal(() => a.admit('10.0.0.1'));
    assert.equal(err.code, 'LIMIT_CONNECT_RATE');
    assert.equal(err.retryAfterSeconds, 1);
    a.admit('10.0.0.9'); // another address has its own bucket
    clock.now += 200; // one token back at 5 per second
    a.admit('10.0.0.1');
    assert.equal(refusal(() => a.admit('10.0.0.1')).code, 'LIMIT_CONNECT_RATE');
    clock.now += 10_000; // full again, but never above the burst
    for (let i = 0; i < 10; i++) a.admit('10.0.0.1');
    assert.equal(refusal(() => a.admit('10.0.0.1')).code, 'LIMIT_CONNECT_RATE');
    a.close();
  });

  it('counts pending (not yet entered) connections for the node; entered or closed ones leave the count', () => {
    const { a } = admission({ maxPendingConnections: 2 });
    const t1 = a.admit('10.0.0.1');
    const t2 = a.admit('10.0.0.2');
    assert.equal(a.pending, 2);
    assert.equal(refusal(() => a.admit('10.0.0.3')).code, 'LIMIT_PENDING');
    t1.entered();
    t1.entered(); // once only
    assert.equal(a.pending, 1);
    const t3 = a.admit('10.0.0.3');
    t2.release();
    t1.release(); // entered, then closed: not pending twice
    assert.equal(a.pending, 1);
    t3.release();
    assert.equal(a.pending, 0);
    a.close();
  });

  it('rate-limits requests per connection: burst of twice the rate, then one per 1/rate s', () => {
    const { a, clock } = admission({ requestsPerSecond: 10 });
    const t = a.admit('10.0.0.1');
    for (let i = 0; i < 20; i++) assert.equal(t.request(), true, `request ${i}`);
    assert.equal(t.request(), false);
    clock.now += 100;
    assert.equal(t.request(), true);
    assert.equal(t.request(), false);
    // Another connection from the same address has its own bucket.
    assert.equal(a.admit('10.0.0.1').request(), true);
    a.close();
  });

  it('refills slow and fractional request rates even when asked every millisecond', () => {
    const { a, clock } = admission({ requestsPerSecond: 0.5 });
    const t = a.admit('10.0.0.1');
    // The bucket holds at least one token: one request passes, then none for 2 s.
    assert.equal(t.request(), true);
    let passed = 0;
    for (let ms = 0; ms < 4000; ms++) {
      clock.now += 1;
      if (t.request()) passed++;
    }
    // 4 s at 0.5/s is 2 tokens: polling every millisecond must not lose the fractions.
    assert.equal(passed, 2);
    a.close();
  });

  it('a ticket carries its IPv4 address as the one string for that address; none for an IPv6 /64, which covers many', () => {
    const { a } = admission({});
    const first = a.admit(['10.0.0', '7'].join('.'));
    const second = a.admit(['10.0', '0.7'].join('.'));
    assert.equal(first.address, '10.0.0.7');
    assert.equal(second.address, first.address);
    assert.equal(a.admit('2001:db8::1').address, undefined);
    assert.equal(admission({ exemptIps: ['127.0.0.1'] }).a.admit('127.0.0.1').address, '127.0.0.1');
    a.close();
  });

  it('exempt addresses skip per-address and request limits, but still count as pending', () => {
    const { a } = admission({ maxConnectionsPerIp: 1, connectsPerSecondPerIp: 1, requestsPerSecond: 1, maxPendingConnections: 3, exemptIps: ['127.0.0.1', '::1'] });
    const t = a.admit('127.0.0.1');
    a.admit('::ffff:127.0.0.1');
    for (let i = 0; i < 100; i++) assert.equal(t.request(), true);
    a.admit('::1');
    assert.equal(a.pending, 3);
    assert.equal(refusal(() => a.admit('127.0.0.1')).code, 'LIMIT_PENDING');
    a.close();
  });

  it('exempts CIDR ranges (IPv4, IPv6, and IPv4-mapped IPv6 against an IPv4 range); an empty list exempts nothing', () => {
    const { a } = admission({ maxConnectionsPerIp: 1, exemptIps: ['127.0.0.0/8', '10.1.0.0/16', '::1/128', 'fd00::/8'] });
    for (const address of ['127.0.0.1', '127.0.0.2', '::ffff:127.0.0.9', '10.1.200.3', '::1', 'fd12:3456::1']) {
      a.admit(address);
      a.admit(address);
      assert.equal(a.isExempt(address), true, address);
    }
    a.admit('10.2.0.1');
    assert.equal(refusal(() => a.admit('10.2.0.1')).code, 'LIMIT_CONNECTIONS_PER_IP', 'outside the ranges: counted');
    a.admit('::2');
    assert.equal(refusal(() => a.admit('::2')).code, 'LIMIT_CONNECTIONS_PER_IP');
    const none = admission({ maxConnectionsPerIp: 1, exemptIps: [] }).a;
    none.admit('127.0.0.1');
    assert.equal(refusal(() => none.admit('127.0.0.1')).code, 'LIMIT_CONNECTIONS_PER_IP', 'no exempt addresses: loopback is counted too');
    assert.equal(none.isExempt('::1'), false);
    a.close();
    none.close();
  });

  it('an entered connection with a full bucket gives up its own ticket for its address’s shared one', () => {
    const { a, clock } = admission({ maxConnectionsPerIp: 3, requestsPerSecond: 10 });
    const t1 = a.admit('10.0.0.1');
    assert.equal(t1.idle(), t1, 'a pending connection keeps its own ticket');
    t1.entered();
    assert.equal(t1.request(), true);
    assert.equal(t1.idle(), t1, 'a bucket that is not full is state of its own');
    clock.now += 100; // one token back at 10/s: full again
    const s1 = t1.idle();
    assert.notEqual(s1, t1);
    const t2 = a.admit('10.0.0.1');
    t2.entered();
    assert.equal(t2.idle(), s1, 'one shared ticket per address');
    assert.notEqual(a.admit('10.0.0.2').idle(), s1);
    assert.equal(a.pending, 1, 'settling is not entering again');
    assert.equal(s1.idle(), s1);
    assert.throws(() => s1.request(), /take own\(\) first/);
    a.close();
  });

  it('a settled connection counts requests in a fresh full bucket of its own, and releases its address once', () => {
    const { a } = admission({ maxConnectionsPerIp: 2, requestsPerSecond: 10 });
    const tickets = [a.admit('10.0.0.1'), a.admit('10.0.0.1')];
    for (const t of tickets) t.entered();
    const [s1, s2] = tickets.map((t) => t.idle());
    const own = s1!.own();
    assert.notEqual(own, s1);
    assert.equal(own.own(), own);
    for (let i = 0; i < 20; i++) assert.equal(own.request(), true, `request ${i}`);
    assert.equal(own.request(), false, 'the burst is the same as a new connection’s');
    assert.equal(refusal(() => a.admit('10.0.0.1')).code, 'LIMIT_CONNECTIONS_PER_IP');
    own.release();
    assert.equal(a.openFrom('10.0.0.1'), 1);
    s2!.release();
    assert.equal(a.openFrom('10.0.0.1'), 0);
    assert.equal(a.pending, 0);
    a.close();
  });

  it('with no request rate an entered connection settles at once, and counts requests on the shared ticket', () => {
    const { a } = admission({ maxConnectionsPerIp: 1 });
    const t = a.admit('10.0.0.1');
    t.entered();
    const s = t.idle();
    assert.notEqual(s, t);
    assert.equal(s.own(), s);
    assert.equal(s.request(), true);
    s.release();
    assert.equal(a.openFrom('10.0.0.1'), 0);
    a.admit('10.0.0.1');
    a.close();
  });

  it('sweeps idle addresses once their bucket is full again', () => {
    const { a, clock } = admission({ maxConnectionsPerIp: 5, connectsPerSecondPerIp: 1 });
    a.admit('10.0.0.1').release();
    a.sweep();
    assert.equal(a.openFrom('10.0.0.1'), 0);
    // Still remembered: its bucket is not full, so a burst cannot start over by waiting for a sweep.
    a.admit('10.0.0.1').release();
    assert.equal(refusal(() => a.admit('10.0.0.1')).code, 'LIMIT_CONNECT_RATE');
    clock.now += 5000;
    a.sweep();
    a.admit('10.0.0.1');
    a.close();
  });

  it('counts IPv4-mapped IPv6 as IPv4 and IPv6 by its /64', () => {
    assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('10.1.2.3'), '10.1.2.3');
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('::1'), '::1');
    const { a } = admission({ maxConnectionsPerIp: 1 });
    a.admit('2001:db8:1:2::1');
    assert.equal(refusal(() => a.admit('2001:db8:1:2::2')).code, 'LIMIT_CONNECTIONS_PER_IP');
    a.admit('2001:db8:1:3::1');
    a.close();
  });

  it('maps refusals to HTTP: 429 to slow down, 503 when full, with Retry-After and {code, message}', () => {
    const rate = httpRefusal(new LimitError('LIMIT_CONNECT_RATE', 3));
    assert.equal(rate.status, 429);
    assert.equal(rate.headers['retry-after'], '3');
    assert.deepEqual(JSON.parse(rate.body), { code: 'LIMIT_CONNECT_RATE', message: 'connecting too often from this address; retry later' });
    assert.equal(httpRefusal(new LimitError('LIMIT_PENDING')).status, 503);
    assert.equal(httpRefusal(new LimitError('LIMIT_CONNECTIONS_PER_IP')).status, 429);
  });
});

describe('limits in the config', () => {
  it('has documented defaults', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(
      {
        maxConnectionsPerIp: c.maxConnectionsPerIp,
        connectsPerSecondPerIp: c.connectsPerSecondPerIp,
        maxPendingConnections: c.maxPendingConnections,
        requestsPerSecond: c.requestsPerSecond,
        maxConnectionsPerApp: c.maxConnectionsPerApp,
        maxTagsPerClient: c.maxTagsPerClient,
        limitsExemptIps: c.limitsExemptIps,
        loginFailuresPerMinute: c.loginFailuresPerMinute,
        handshakeTimeoutSeconds: c.handshakeTimeoutSeconds,
      },
      {
        maxConnectionsPerIp: 1000,
        connectsPerSecondPerIp: 20,
        maxPendingConnections: 10_000,
        requestsPerSecond: 100,
        maxConnectionsPerApp: 0,
        maxTagsPerClient: 256,
        limitsExemptIps: ['127.0.0.1', '::1'],
        loginFailuresPerMinute: 10,
        handshakeTimeoutSeconds: 10,
      },
    );
  });

  it('has the descriptor and HTTP timeout settings, from the environment too', () => {
    const d = loadConfig({ env: {} });
    assert.deepEqual([d.openFilesLimit, d.descriptorReserve, d.httpKeepAliveSeconds, d.httpRequestTimeoutSeconds], [undefined, 128, 5, 30]);
    const c = loadConfig({
      env: { SHADDOCK_OPEN_FILES_LIMIT: '4096', SHADDOCK_DESCRIPTOR_RESERVE: '0', SHADDOCK_HTTP_KEEP_ALIVE: '65', SHADDOCK_HTTP_REQUEST_TIMEOUT: '120' },
    });
    assert.deepEqual([c.openFilesLimit, c.descriptorReserve, c.httpKeepAliveSeconds, c.httpRequestTimeoutSeconds], [4096, 0, 65, 120]);
    assert.throws(() => loadConfig({ env: { SHADDOCK_OPEN_FILES_LIMIT: '10' } }), /openFilesLimit/);
  });

  it('an empty SHADDOCK_LIMITS_EXEMPT_IPS means no exempt address (not the loopback default); CIDR ranges are accepted and checked', () => {
    assert.deepEqual(loadConfig({ env: { SHADDOCK_LIMITS_EXEMPT_IPS: '' } }).limitsExemptIps, []);
    assert.deepEqual(loadConfig({ env: { SHADDOCK_LIMITS_EXEMPT_IPS: ' , ' } }).limitsExemptIps, []);
    assert.deepEqual(loadConfig({ env: {} }).limitsExemptIps, ['127.0.0.1', '::1'], 'unset: the loopback default');
    assert.deepEqual(
      loadConfig({ env: { SHADDOCK_LIMITS_EXEMPT_IPS: '127.0.0.0/8, 10.0.0.0/8,::1/128' } }).limitsExemptIps,
      ['127.0.0.0/8', '10.0.0.0/8', '::1/128'],
    );
    assert.throws(() => loadConfig({ env: { SHADDOCK_LIMITS_EXEMPT_IPS: '10.0.0.0/33' } }), /limitsExemptIps.*prefix length must be 0 to 32/);
    assert.throws(() => loadConfig({ env: { SHADDOCK_LIMITS_EXEMPT_IPS: 'localhost' } }), /limitsExemptIps.*not an IP address or CIDR range/);
  });

  it('reads them from the environment (exempt addresses comma-separated) and refuses bad values', () => {
    const c = loadConfig({
      env: {
        SHADDOCK_MAX_CONNECTIONS_PER_IP: '5',
        SHADDOCK_CONNECTS_PER_SECOND_PER_IP: '0.5',
        SHADDOCK_REQUESTS_PER_SECOND: '0',
        SHADDOCK_MAX_PENDING_CONNECTIONS: '7',
        SHADDOCK_MAX_CONNECTIONS_PER_APP: '9',
        SHADDOCK_MAX_TAGS_PER_CLIENT: '3',
        SHADDOCK_LIMITS_EXEMPT_IPS: '10.0.0.1, ::1,',
        SHADDOCK_LOGIN_FAILURES_PER_MINUTE: '4',
        SHADDOCK_HANDSHAKE_TIMEOUT: '3',
      },
    });
    assert.equal(c.maxConnectionsPerIp, 5);
    assert.equal(c.connectsPerSecondPerIp, 0.5);
    assert.equal(c.requestsPerSecond, 0);
    assert.equal(c.maxPendingConnections, 7);
    assert.equal(c.maxConnectionsPerApp, 9);
    assert.equal(c.maxTagsPerClient, 3);
    assert.deepEqual(c.limitsExemptIps, ['10.0.0.1', '::1']);
    assert.equal(c.loginFailuresPerMinute, 4);
    assert.equal(c.handshakeTimeoutSeconds, 3);
    assert.throws(() => loadConfig({ env: { SHADDOCK_MAX_CONNECTIONS_PER_IP: '-1' } }), ConfigError);
    assert.throws(() => loadConfig({ env: { SHADDOCK_MAX_TAGS_PER_CLIENT: '1000' } }), /maxTagsPerClient/);
    assert.throws(() => loadConfig({ env: { SHADDOCK_REQUESTS_PER_SECOND: 'lots' } }), /SHADDOCK_REQUESTS_PER_SECOND must be a number/);
  });
});
