import { useMemo, useState } from 'preact/hooks';
import { api, errorText, type AppInfo, type PushRequest, type PushResult } from '../api.js';
import { count, duration } from '../format.js';
import { appHref, onLinkClick } from '../router.js';

type Mode = 'simple' | 'json';
type TargetKind = 'all' | 'clients' | 'tags';

/** Splits "a, b\nc" into ["a", "b", "c"]. */
function splitList(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

export function PushTab(props: { app: AppInfo; selected: ReadonlySet<string>; setSelected: (s: ReadonlySet<string>) => void }) {
  const { app, selected, setSelected } = props;
  const [mode, setMode] = useState<Mode>('simple');
  const [title, setTitle] = useState('');
  const [msg, setMsg] = useState('');
  const [json, setJson] = useState('{\n  "title": "hello",\n  "msg": "world"\n}');
  const [event, setEvent] = useState('');
  const [target, setTarget] = useState<TargetKind>(selected.size > 0 ? 'clients' : 'all');
  const [tags, setTags] = useState('');
  const [addId, setAddId] = useState('');
  const [ttl, setTtl] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<PushResult | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  // What will be sent, or why it cannot be.
  const built = useMemo((): { req: PushRequest } | { problem: string } => {
    let data: unknown;
    if (mode === 'simple') {
      if (title.trim() === '' && msg.trim() === '') return { problem: 'Write a title or a message.' };
      data = { title, msg };
    } else {
      try {
        data = JSON.parse(json) as unknown;
      } catch (err) {
        return { problem: `Payload is not valid JSON: ${errorText(err)}` };
      }
    }
    let to: PushRequest['to'];
    if (target === 'clients') {
      if (selected.size === 0) return { problem: 'Select clients in the Clients tab, or add client ids below.' };
      to = { clientIds: [...selected] };
    } else if (target === 'tags') {
      const list = splitList(tags);
      if (list.length === 0) return { problem: 'Name at least one tag.' };
      to = { tags: list };
    }
    let ttlSeconds: number | undefined;
    if (ttl.trim() !== '') {
      ttlSeconds = Number(ttl);
      if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) return { problem: 'TTL: a whole number of seconds, at least 1 (or empty for the app default).' };
    }
    const ev = event.trim();
    return {
      req: {
        ...(ev !== '' ? { event: ev } : {}),
        data,
        ...(to !== undefined ? { to } : {}),
        ...(ttlSeconds !== undefined ? { ttl: ttlSeconds } : {}),
      },
    };
  }, [mode, title, msg, json, event, target, selected, tags, ttl]);

  const send = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!('req' in built)) return;
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    try {
      setResult(await api.push(app.apikey, built.req));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const removeId = (id: string): void => {
    const next = new Set(selected);
    next.delete(id);
    setSelected(next);
  };
  const addIds = (): void => {
    const ids = splitList(addId);
    if (ids.length === 0) return;
    setSelected(new Set([...selected, ...ids]));
    setAddId('');
  };

  return (
    <form class="composer" onSubmit={(e) => void send(e)} data-testid="composer">
      <div class="card stack">
        <div class="segmented" role="radiogroup" aria-label="Payload">
          <button type="button" role="radio" aria-checked={mode === 'simple'} class={mode === 'simple' ? 'on' : ''} onClick={() => setMode('simple')}>
            Title and message
          </button>
          <button type="button" role="radio" aria-checked={mode === 'json'} class={mode === 'json' ? 'on' : ''} onClick={() => setMode('json')}>
            Raw JSON
          </button>
        </div>
        {mode === 'simple' ? (
          <>
            <label>
              Title
              <input name="title" value={title} onInput={(e) => setTitle(e.currentTarget.value)} placeholder="Sale starts now" />
            </label>
            <label>
              Message
              <textarea name="msg" rows={4} value={msg} onInput={(e) => setMsg(e.currentTarget.value)} placeholder="Everything is 20% off until midnight." />
            </label>
            <p class="muted small">
              Clients receive <code>{'{"title": …, "msg": …}'}</code>, as the seed's dashboard sent it.
            </p>
          </>
        ) : (
          <label>
            Payload (any JSON value)
            <textarea name="json" class="mono" rows={8} spellcheck={false} value={json} onInput={(e) => setJson(e.currentTarget.value)} />
          </label>
        )}
        <div class="row">
          <label>
            Event
            <input name="event" value={event} onInput={(e) => setEvent(e.currentTarget.value)} placeholder="onMsg" maxLength={255} />
          </label>
          <label>
            TTL (s)
            <input
              name="ttl"
              inputMode="numeric"
              value={ttl}
              onInput={(e) => setTtl(e.currentTarget.value)}
              placeholder={`app default: ${duration(app.messageTtlSeconds)}`}
            />
          </label>
        </div>
      </div>

      <div class="card stack">
        <fieldset class="targets">
          <legend>Send to</legend>
          <label class="radio">
            <input type="radio" name="target" value="all" checked={target === 'all'} onChange={() => setTarget('all')} />
            Every client of the app
          </label>
          <label class="radio">
            <input type="radio" name="target" value="clients" checked={target === 'clients'} onChange={() => setTarget('clients')} />
            Selected clients ({count(selected.size)})
          </label>
          {target === 'clients' && (
            <div class="indent stack">
              <div class="chips" data-testid="selected-clients">
                {[...selected].slice(0, 200).map((id) => (
                  <span key={id} class="chip">
                    {id}
                    <button type="button" aria-label={`Remove ${id}`} onClick={() => removeId(id)}>
                      ×
                    </button>
                  </span>
                ))}
                {selected.size > 200 && <span class="muted">and {count(selected.size - 200)} more</span>}
                {selected.size === 0 && <span class="muted">None yet: tick clients in the Clients tab, or add ids here.</span>}
              </div>
              <div class="row">
                <input
                  aria-label="Add client ids"
                  placeholder="add client ids (also offline ones)"
                  value={addId}
                  onInput={(e) => setAddId(e.currentTarget.value)}
                  onKeyDown={(e) => {
                    if (e.key === 'Enter') {
                      e.preventDefault();
                      addIds();
                    }
                  }}
                />
                <button type="button" onClick={addIds}>
                  Add
                </button>
              </div>
            </div>
          )}
          <label class="radio">
            <input type="radio" name="target" value="tags" checked={target === 'tags'} onChange={() => setTarget('tags')} />
            Clients with any of these tags
          </label>
          {target === 'tags' && (
            <div class="indent">
              <input name="tags" aria-label="Tags" placeholder="news, sport" value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
            </div>
          )}
        </fieldset>
        <details class="request">
          <summary>Request</summary>
          <pre>{'req' in built ? `POST /api/v1/apps/${app.apikey}/messages\n${JSON.stringify(built.req, null, 2)}` : built.problem}</pre>
        </details>
        {'problem' in built && <p class="muted small">{built.problem}</p>}
        <button type="submit" class="primary big" disabled={busy || !('req' in built)} data-testid="push-send">
          {busy ? 'Sending…' : 'Send push'}
        </button>
        {error !== undefined && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {result !== undefined && (
          <div class="result" role="status" data-testid="push-result">
            Accepted: message <strong data-testid="push-result-id">#{result.id}</strong>, targeted {count(result.targeted)} client
            {result.targeted === 1 ? '' : 's'}.{' '}
            <a href={appHref(app.apikey, 'history')} onClick={onLinkClick}>
              Receipts in History →
            </a>
          </div>
        )}
      </div>
    </form>
  );
}
