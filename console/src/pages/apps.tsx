import { useEffect, useState } from 'preact/hooks';
import { api, errorText, type AppInfo } from '../api.js';
import { dateTime, duration } from '../format.js';
import { appHref, navigate, onLinkClick } from '../router.js';

export function AppsPage() {
  const [apps, setApps] = useState<readonly AppInfo[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  useEffect(() => {
    api.apps().then(setApps, (err: unknown) => setError(errorText(err)));
  }, []);

  return (
    <section class="page">
      <div class="page-head">
        <h1>Apps</h1>
        <span class="muted">{apps !== undefined ? `${apps.length} app${apps.length === 1 ? '' : 's'}` : ''}</span>
      </div>
      <CreateApp onCreated={(app) => navigate(appHref(app.apikey, 'settings'))} />
      {error !== undefined && <p class="error">{error}</p>}
      {apps === undefined && error === undefined && <p class="muted">Loading…</p>}
      {apps !== undefined && apps.length === 0 && <p class="muted">No apps yet: create one above.</p>}
      {apps !== undefined && apps.length > 0 && (
        <div class="card table-card">
          <table class="table" data-testid="apps-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Apikey</th>
                <th>Message TTL</th>
                <th>Client token</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {apps.map((a) => (
                <tr key={a.apikey}>
                  <td>
                    <a href={appHref(a.apikey)} onClick={onLinkClick} class="strong">
                      {a.name}
                    </a>
                  </td>
                  <td>
                    <code>{a.apikey}</code>
                  </td>
                  <td>{duration(a.messageTtlSeconds)}</td>
                  <td>{a.requireClientToken ? 'required' : 'not required'}</td>
                  <td>{dateTime(a.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function CreateApp(props: { onCreated: (app: AppInfo) => void }) {
  const [name, setName] = useState('');
  const [ttl, setTtl] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const ttlSeconds = ttl.trim() === '' ? undefined : Number(ttl);
    if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds >= 1)) {
      setError('Message TTL: a whole number of seconds, at least 1 (or empty for the default).');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      props.onCreated(await api.createApp(name.trim(), ttlSeconds));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card inline-form" onSubmit={(e) => void submit(e)} data-testid="create-app">
      <label>
        New app
        <input name="name" placeholder="name, e.g. shop" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <label>
        Message TTL (s)
        <input name="ttl" inputMode="numeric" placeholder="default" value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" disabled={busy || name.trim() === ''}>
        Create app
      </button>
      {error !== undefined && <p class="error full">{error}</p>}
    </form>
  );
}
