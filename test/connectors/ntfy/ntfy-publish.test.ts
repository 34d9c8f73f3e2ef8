// Publishing through the ntfy front door, as ntfy's documentation shows it
// (https://docs.ntfy.sh/publish/): its curl examples, run against Shaddock with the real
// curl, ntfy.sh replaced by the ntfy listener. Error codes and texts are ntfy's
// (server/errors.go of binwiederhier/ntfy).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../../fixtures/test-server.js';
import { readSseEvents, type SseFields } from '../../fixtures/sse-events.js';
import { waitFor } from '../../fixtures/wait.js';
import { curl, CurlStream } from './ntfy-helpers.js';

type Msg = { readonly [k: string]: unknown };

describe('ntfy publishing (docs.ntfy.sh/publish)', () => {
  let t: TestServer;
  let base: string;
  let files: string;
  before(async () => {
    t = await startTestServer();
    base = `http://127.0.0.1:${t.server.ntfyPort}`;
    files = mkdtempSync(join(tmpdir(), 'ntfy-files-'));
  });
  after(async () => {
    await t.close();
    rmSync(files, { recursive: true, force: true });
  });

  /** The cached messages of a topic, as `GET /<topic>/json?poll=1` returns them. */
  async function poll(topic: string, query = ''): Promise<Msg[]> {
    const r = await curl([`${base}/${topic}/json?poll=1${query}`]);
    assert.equal(r.status, 200, r.body);
    return r.body
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Msg);
  }

  it('curl -d "Backup successful 😀" <server>/mytopic: answered with the message JSON; stored as a push to tag mytopic, in history', async () => {
    const r = await curl(['-d', 'Backup successful 😀', `${base}/mytopic`]);
    assert.equal(r.status, 200);
    const m = r.json as Msg;
    // docs: "JSON message format" — id (12 chars), time, expires, event, topic, message.
    assert.match(m['id'] as string, /^[A-Za-z0-9]{12}$/);
    assert.equal(m['event'], 'message');
    assert.equal(m['topic'], 'mytopic');
    assert.equal(m['message'], 'Backup successful 😀');
    assert.equal(typeof m['time'], 'number');
    assert.equal(m['expires'], (m['time'] as number) + t.server.ntfyApp.messageTtlSeconds);
    // A Shaddock push: in the app's history with the ntfy fields as its data, to tag mytopic.
    const apikey = t.server.ntfyApp.apikey;
    const h = await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/messages?limit=1`, { headers: { authorization: `Bearer ${t.server.ntfyApp.secret}` } });
    const history = (await h.json()) as { messages: { id: number; event: string; data: unknown; target: { tags: string[] } }[] };
    const last = history.messages[0]!;
    assert.equal(t.server.ntfy!.ntfyId(last.id), m['id'], 'the ntfy id is the Shaddock id, encoded');
    assert.equal(last.event, 'ntfy');
    assert.deepEqual(last.data, { message: 'Backup successful 😀' });
    assert.deepEqual(last.target.tags, ['mytopic']);
  });

  it('title, priority and tags in every form the docs show (X-Title/Title/t, X-Priority/Priority/p, X-Tags/Tags/ta)', async () => {
    const cases: [string[], Msg][] = [
      [['-H', 'X-Title: Dogs are better than cats', '-d', 'Oh my ...'], { title: 'Dogs are better than cats', message: 'Oh my ...' }],
      [['-H', 'Title: Dogs are better than cats', '-d', 'Oh my ...'], { title: 'Dogs are better than cats' }],
      [['-H', 't: Dogs are better than cats', '-d', 'Oh my ...'], { title: 'Dogs are better than cats' }],
      [['-H', 'X-Priority: 5', '-d', 'An urgent message'], { priority: 5 }],
      [['-H', 'Priority: low', '-d', 'Low priority message'], { priority: 2 }],
      [['-H', 'p:4', '-d', 'A high priority message'], { priority: 4 }],
      [['-H', 'Priority: urgent', '-d', 'x'], { priority: 5 }],
      [['-H', 'Priority: min', '-d', 'x'], { priority: 1 }],
      [['-H', 'X-Tags: warning,mailsrv13,daily-backup', '-d', 'Backup of mailsrv13 failed'], { tags: ['warning', 'mailsrv13', 'daily-backup'] }],
      [['-H', 'Tags: horse,unicorn', '-d', 'Unicorns are just horses with unique horns'], { tags: ['horse', 'unicorn'] }],
      [['-H', 'ta:dog', '-d', 'Dogs are awesome'], { tags: ['dog'] }],
      // RFC 2047 encoded header (ntfy decodes MIME-encoded headers: util.go maybeDecodeHeader).
      [['-H', 'Title: =?UTF-8?B?8J+QtiBkb2c=?=', '-d', 'x'], { title: '🐶 dog' }],
    ];
    for (const [args, expected] of cases) {
      const r = await curl([...args, `${base}/forms`]);
      assert.equal(r.status, 200, `${args.join(' ')}: ${r.body}`);
      for (const [k, v] of Object.entries(expected)) assert.deepEqual((r.json as Msg)[k], v, `${args.join(' ')}: ${k}`);
    }
    // The same fields reach subscribers.
    const cached = await poll('forms');
    assert.equal(cached.length, cases.length);
    assert.equal(cached[4]!['priority'], 2);
    assert.deepEqual(cached[8]!['tags'], ['warning', 'mailsrv13', 'daily-backup']);
    // Cloudflare's RFC 9218 `Priority: u=3, i` is not ntfy's priority (util.go maybeIgnoreSpecialHeader).
    const cf = await curl(['-H', 'Priority: u=3, i', '-d', 'x', `${base}/forms`]);
    assert.equal((cf.json as Msg)['priority'], undefined);
  });

  it('the full example: title, priority, tags; click, attach by URL, actions (short form), markdown, icon', async () => {
    let r = await curl([
      '-H', 'Title: Unauthorized access detected',
      '-H', 'Priority: urgent',
      '-H', 'Tags: warning,skull',
      '-d', 'Remote access to phils-laptop detected. Act right away.',
      `${base}/phil_alerts`,
    ]);
    assert.deepEqual(
      { title: (r.json as Msg)['title'], priority: (r.json as Msg)['priority'], tags: (r.json as Msg)['tags'] },
      { title: 'Unauthorized access detected', priority: 5, tags: ['warning', 'skull'] },
    );
    r = await curl([
      '-H', 'Click: https://home.nest.com/',
      '-H', 'Attach: https://nest.com/view/yAxkasd.jpg',
      '-H', 'Actions: http, Open door, https://api.nest.com/open/yAxkasd, clear=true',
      '-d', "There's someone at the door. 🐶\n\nPlease check if it's a good boy or a hooman.",
      `${base}/mydoorbell`,
    ]);
    const m = r.json as Msg;
    assert.equal(r.status, 200, r.body);
    assert.equal(m['click'], 'https://home.nest.com/');
    // docs "Attach file from a URL": the name is taken from the URL.
    assert.deepEqual(m['attachment'], { name: 'yAxkasd.jpg', url: 'https://nest.com/view/yAxkasd.jpg' });
    const [action] = m['actions'] as Msg[];
    assert.match(action!['id'] as string, /^[A-Za-z0-9]{10}$/);
    assert.deepEqual({ ...action, id: undefined }, { id: undefined, action: 'http', label: 'Open door', url: 'https://api.nest.com/open/yAxkasd', clear: true });
    assert.equal(m['message'], "There's someone at the door. 🐶\n\nPlease check if it's a good boy or a hooman.");

    // docs "Action buttons", short form with two actions and a quoted body.
    const body = '{"temperature": 65}';
    r = await curl([
      '-d', 'You left the house. Turn down the A/C?',
      '-H', `Actions: view, Open portal, https://home.nest.com/, clear=true; http, Turn down, https://api.nest.com/, body='${body}'`,
      `${base}/myhome`,
    ]);
    const actions = (r.json as Msg)['actions'] as Msg[];
    assert.equal(actions.length, 2);
    assert.deepEqual([actions[0]!['action'], actions[0]!['label'], actions[0]!['clear']], ['view', 'Open portal', true]);
    assert.deepEqual([actions[1]!['action'], actions[1]!['url'], actions[1]!['body']], ['http', 'https://api.nest.com/', body]);

    r = await curl(['-d', 'Look ma, **bold text**, *italics*, ...', '-H', 'Markdown: yes', `${base}/mytopic`]);
    assert.equal((r.json as Msg)['content_type'], 'text/markdown');
    r = await curl([
      '-H', 'Icon: https://styles.redditmedia.com/t5_32uhe/styles/communityIcon_xnt6chtnr2j21.png',
      '-H', 'Title: Kodi: Resuming Playback',
      '-H', 'Tags: arrow_forward',
      '-d', 'The Wire, S01E01',
      `${base}/tvshows`,
    ]);
    assert.equal((r.json as Msg)['icon'], 'https://styles.redditmedia.com/t5_32uhe/styles/communityIcon_xnt6chtnr2j21.png');
    // docs: `curl -X POST -H "Attach: https://f-droid.org/F-Droid.apk"` — no body, the attachment is the message.
    r = await curl(['-X', 'POST', '-H', 'Attach: https://f-droid.org/F-Droid.apk', `${base}/mydownloads`]);
    assert.deepEqual((r.json as Msg)['attachment'], { name: 'F-Droid.apk', url: 'https://f-droid.org/F-Droid.apk' });
    assert.equal((r.json as Msg)['message'], 'triggered', 'an empty body is ntfy\'s "triggered"');
  });

  it('publish as JSON to the root URL (docs "Publish as JSON"), actions as JSON', async () => {
    const r = await curl([
      base,
      '-d',
      JSON.stringify({
        topic: 'mytopic-json',
        message: 'Disk space is low at 5.1 GB',
        title: 'Low disk space alert',
        tags: ['warning', 'cd'],
        priority: 4,
        attach: 'https://filesrv.lan/space.jpg',
        filename: 'diskspace.jpg',
        click: 'https://homecamera.lan/xasds1h2xsSsa/',
        actions: [{ action: 'view', label: 'Admin panel', url: 'https://filesrv.lan/admin' }],
      }),
    ]);
    assert.equal(r.status, 200, r.body);
    const m = r.json as Msg;
    assert.equal(m['topic'], 'mytopic-json');
    assert.equal(m['title'], 'Low disk space alert');
    assert.equal(m['priority'], 4);
    assert.deepEqual(m['tags'], ['warning', 'cd']);
    assert.deepEqual(m['attachment'], { name: 'diskspace.jpg', url: 'https://filesrv.lan/space.jpg' });
    assert.equal((m['actions'] as Msg[])[0]!['label'], 'Admin panel');
    // Not JSON, no topic, wrong types: ntfy's answers.
    assert.equal((await curl([base, '-d', 'not json'])).body, '{"code":40024,"http":400,"error":"invalid request: request body must be valid JSON"}\n', 'ntfy answers its error JSON with a newline');
    assert.equal(((await curl([base, '-d', '{"message":"x"}'])).json as Msg)['code'], 40009);
    assert.equal(((await curl([base, '-d', '{"topic":"a","priority":"high"}'])).json as Msg)['code'], 40024);
    assert.equal(((await curl([base, '-d', '{"topic":"a","actions":[{"action":"jump","label":"x"}]}'])).json as Msg)['code'], 40018);
  });

  it('webhooks: GET /<topic>/trigger and /publish?message=…&priority=high&tags=warning,skull (docs "Webhooks")', async () => {
    let r = await curl([`${base}/mywebhook/trigger`]);
    assert.equal(r.status, 200);
    assert.equal((r.json as Msg)['message'], 'triggered');
    r = await curl([`${base}/mywebhook/publish?message=Webhook+triggered&priority=high&tags=warning,skull`]);
    assert.deepEqual([(r.json as Msg)['message'], (r.json as Msg)['priority'], (r.json as Msg)['tags']], ['Webhook triggered', 4, ['warning', 'skull']]);
    r = await curl([`${base}/mywebhook/send?m=line1\\nline2&t=Hi`]);
    assert.deepEqual([(r.json as Msg)['message'], (r.json as Msg)['title']], ['line1\nline2', 'Hi']);
  });

  it('X-Cache: no — delivered to who listens now, never to who polls later; no `expires`', async () => {
    const live = new CurlStream([`${base}/nocache/json`]);
    try {
      await live.waitFor((s) => s.events.some((e) => e.event === 'open'), 'open event');
      const r = await curl(['-H', 'X-Cache: no', '-d', "This message won't be stored server-side", `${base}/nocache`]);
      assert.equal((r.json as Msg)['expires'], undefined);
      await live.waitFor((s) => s.messages().length === 1, 'the live message');
      await curl(['-H', 'Cache: no', '-d', 'second', `${base}/nocache`]);
      await live.waitFor((s) => s.messages().length === 2, 'the second live message');
      assert.deepEqual(await poll('nocache'), []);
    } finally {
      live.stop();
    }
  });

  it('what this server does not do is refused with ntfy\'s errors: e-mail, calls, uploads, bodies past 4096 bytes', async () => {
    let r = await curl(['-H', 'Email: phil@example.com', '-d', "You've Got Mail", `${base}/alerts`]);
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { code: 40001, http: 400, error: 'e-mail notifications are not enabled', link: 'https://ntfy.sh/docs/config/#e-mail-notifications' });
    r = await curl(['-d', "You've Got Mail", `${base}/alerts?email=phil@example.com`]);
    assert.equal((r.json as Msg)['code'], 40001);
    r = await curl(['-H', 'Call: +12223334444', '-d', 'Your garage seems to be on fire.', `${base}/alerts`]);
    assert.deepEqual(r.json, { code: 40032, http: 400, error: 'invalid request: calling is disabled', link: 'https://ntfy.sh/docs/config/#phone-calls' });
    // docs "Attach local file": curl -T flower.jpg -H "Filename: flower.jpg"
    const file = join(files, 'flower.jpg');
    writeFileSync(file, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 1, 2, 3]));
    r = await curl(['-T', file, '-H', 'Filename: flower.jpg', `${base}/flowers`]);
    assert.equal(r.status, 400);
    assert.equal((r.json as Msg)['code'], 40014);
    // A body past the message limit: ntfy would store it as an attachment; here 413.
    r = await curl(['--data-binary', 'x'.repeat(4097), `${base}/big`]);
    assert.equal(r.status, 413);
    assert.equal((r.json as Msg)['code'], 41301);
    assert.match((r.json as Msg)['error'] as string, /larger than 4096 bytes/);
    // Exactly 4096 is fine.
    r = await curl(['--data-binary', 'y'.repeat(4096), `${base}/big`]);
    assert.equal(r.status, 200);
    assert.equal(((r.json as Msg)['message'] as string).length, 4096);
    // Binary bodies without ?up=1 would be attachments in ntfy.
    r = await curl(['--data-binary', `@${file}`, `${base}/flowers`]);
    assert.equal((r.json as Msg)['code'], 40014);
    assert.deepEqual(await poll('flowers'), [], 'nothing refused was stored');
  });

  it('bad input: topic rules, priority, actions, delay — ntfy\'s codes; a bad request never hurts the next one', async () => {
    const code = async (args: string[]): Promise<unknown> => ((await curl(args)).json as Msg)['code'];
    assert.equal(await code(['-d', 'x', `${base}/${'a'.repeat(65)}`]), 40401, '65 characters do not match a topic path: 404');
    assert.equal(await code(['-d', 'x', `${base}/bad.topic`]), 40401);
    assert.equal(await code(['-d', 'x', `${base}/v1`]), 40010, 'ntfy reserves v1, docs, file, …');
    assert.equal(await code(['-H', 'Priority: extreme', '-d', 'x', `${base}/ok`]), 40007);
    assert.equal(await code(['-H', 'Actions: view, Open', '-d', 'x', `${base}/ok`]), 40018);
    assert.equal(await code(['-H', 'Actions: view, a, https://a; view, b, https://b; view, c, https://c; view, d, https://d', '-d', 'x', `${base}/ok`]), 40018);
    assert.equal(await code(['-H', 'Click: x', '-H', 'Icon: ftp://x', '-d', 'x', `${base}/ok`]), 40021);
    assert.equal(await code(['-H', 'Attach: /etc/passwd', '-d', 'x', `${base}/ok`]), 40013);
    assert.equal(await code(['-H', 'Delay: 1s', '-d', 'x', `${base}/ok`]), 40005, 'under 10 s');
    assert.equal(await code(['-H', 'Delay: 4d', '-d', 'x', `${base}/ok`]), 40006, 'over 3 days');
    assert.equal(await code(['-H', 'At: tomorrow, 10am', '-d', 'x', `${base}/ok`]), 40004, 'natural language is not read here (docs/ntfy.md)');
    assert.equal(await code(['-H', 'Delay: 30s', '-H', 'Cache: no', '-d', 'x', `${base}/ok`]), 40002);
    assert.equal(await code(['-X', 'DELETE', `${base}/ok`]), 40401);
    // docs "Message templating": not here — said, rather than the template published as text.
    const tpl = await curl(['--globoff', '-d', '{"hostname": "phil-pc"}', `${base}/ok?tpl=yes&t={{.hostname}}`]);
    assert.deepEqual([tpl.status, (tpl.json as { error: string }).error], [400, 'invalid request; message templates (X-Template) are not supported by this server']);
    const ok = await curl(['-d', 'still fine', `${base}/ok`]);
    assert.equal(ok.status, 200);
    assert.equal((await poll('ok')).length, 1);
  });

  it('a publish to topic T reaches Shaddock clients tagged T on other connectors (SSE) with the ntfy fields as data', async () => {
    const apikey = t.server.ntfyApp.apikey;
    const ctrl = new AbortController();
    const res = await fetch(`${t.httpUrl}/api/v1/apps/${apikey}/clients/native1/events?tags=crossover`, { signal: ctrl.signal });
    const events: SseFields[] = [];
    const reading = readSseEvents(res.body!.getReader(), (f) => events.push(f));
    try {
      await waitFor(async () => (await t.server.hub.listClients(apikey)).some((c) => c.clientId === 'native1'), { timeoutMs: 5000, message: 'native client online' });
      await curl(['-H', 'Title: Hello', '-H', 'Priority: high', '-d', 'to everyone on crossover', `${base}/crossover`]);
      await waitFor(() => events.some((e) => e['event'] === 'ntfy'), { timeoutMs: 5000, message: 'the push on the SSE connector' });
      const e = events.find((x) => x['event'] === 'ntfy')!;
      assert.deepEqual(JSON.parse(e['data']!), { message: 'to everyone on crossover', title: 'Hello', priority: 4 });
    } finally {
      ctrl.abort();
      await reading;
    }
  });
});
