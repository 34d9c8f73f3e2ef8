import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signClientToken, verifyClientToken, TokenError } from '../../src/hub/client-tokens.js';

const base = { secret: 'app-secret-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', apikey: 'app-1', clientId: 'phone-1' };
const refusal = (e: unknown): string => (e instanceof TokenError ? e.refusal : `not a TokenError: ${String(e)}`);

for (const format of ['compact', 'jwt'] as const) {
  describe(`client tokens (${format})`, () => {
    it('a fresh token for this app and client passes', async () => {
      const { token, expiresAt } = await signClientToken({ ...base, ttlSeconds: 60, format });
      assert.ok(expiresAt > Date.now());
      await verifyClientToken({ ...base, token });
    });

    it('refuses missing, expired, wrong app, wrong client, rotated secret and tampered tokens with the reason', async () => {
      const { token } = await signClientToken({ ...base, ttlSeconds: 60, format });
      // Someone else's signature, well formed, spliced onto this token.
      const forged = (await signClientToken({ ...base, secret: 'not-the-secret-zzzzzzzzzzzzzzzzzzzzzzzzzz', ttlSeconds: 60, format })).token;
      const tampered = `${token.slice(0, token.lastIndexOf('.'))}${forged.slice(forged.lastIndexOf('.'))}`;
      const cases: [() => Promise<void>, string][] = [
        [() => verifyClientToken({ ...base, token: undefined }), 'missing'],
        [() => verifyClientToken({ ...base, token, now: Date.now() + 61_000 }), 'expired'],
        [() => verifyClientToken({ ...base, token, apikey: 'app-2' }), 'signature'],
        [() => verifyClientToken({ ...base, token, clientId: 'phone-2' }), 'client'],
        [() => verifyClientToken({ ...base, token, secret: 'rotated-secret-yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy' }), 'signature'],
        [() => verifyClientToken({ ...base, token: tampered }), 'signature'],
        [() => verifyClientToken({ ...base, token: 'garbage' }), 'malformed'],
      ];
      for (const [p, expected] of cases) {
        await assert.rejects(p(), (e) => {
          assert.equal(refusal(e), expected);
          return true;
        });
      }
    });
  });
}
