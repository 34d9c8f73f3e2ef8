import { useState } from 'preact/hooks';
import { NTFY_ANONYMOUS_ACCESS, api, errorText, type AppInfo, type NtfyAnonymousAccess } from '../api.js';
import { ConfirmDialog } from '../components/confirm.js';
import { dateTime, duration } from '../format.js';
import { navigate } from '../router.js';

async function copy(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

function CopyButton(props: { text: string; label: string }) {
  const [done, setDone] = useState<string | undefined>(undefined);
  return (
    <button
      type="button"
      class="small"
      onClick={() =>
        void copy(props.text).then((ok) => {
          setDone(ok ? 'Copied' : 'Select and copy');
          setTimeout(() => setDone(undefined), 1500);
        })
      }
    >
      {done ?? props.label}
    </button>
  );
}

export function SettingsTab(props: { app: AppInfo; onChange: (a: AppInfo) => void }) {
  const { app, onChange } = props;
  const [name, setName] = useState(app.name);
  const [ttl, setTtl] = useState(String(app.messageTtlSeconds));
  const [requireToken, setRequireToken] = useState(app.requireClientToken);
  const [ntfyAnonymous, setNtfyAnonymous] = useState<NtfyAnonymousAccess>(app.ntfyAnonymousAccess);
  const [ntfyTokensPublish, setNtfyTokensPublish] = useState(app.ntfyTokensCanPublish);
  const [saved, setSaved] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [revealed, setRevealed] = useState(false);
  const [confirm, setConfirm] = useState<'rotate' | 'delete' | undefined>(undefined);
  const [secretNote, setSecretNote] = useState<string | undefined>(undefined);

  const dirty =
    name.trim() !== app.name ||
    ttl.trim() !== String(app.messageTtlSeconds) ||
    requireToken !== app.requireClientToken ||
    ntfyAnonymous !== app.ntfyAnonymousAccess ||
    ntfyTokensPublish !== app.ntfyTokensCanPublish;

  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    const ttlSeconds = Number(ttl);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      setError('Message TTL: a whole number of seconds, at least 1.');
      return;
    }
    setError(undefined);
    setSaved(undefined);
    try {
      const updated = await api.updateApp(app.apikey, {
        name: name.trim(),
        messageTtlSeconds: ttlSeconds,
        requireClientToken: requireToken,
        ntfyAnonymousAccess: ntfyAnonymous,
        ntfyTokensCanPublish: ntfyTokensPublish,
      });
      onChange(updated);
      setSaved('Saved.');
    } catch (err) {
      setError(errorText(err));
    }
  };

  const rotate = async (): Promise<void> => {
    setConfirm(undefined);
    try {
      onChange(await api.rotateSecret(app.apikey));
      setRevealed(true);
      setSecretNote('A new secret is in force; the old one no longer works. Update your back ends.');
    } catch (err) {
      setSecretNote(errorText(err));
    }
  };

  const remove = async (): Promise<void> => {
    setConfirm(undefined);
    try {
      await api.deleteApp(app.apikey);
      navigate('/');
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <div class="stack settings">
      <form class="card stack" onSubmit={(e) => void save(e)} data-testid="settings-form">
        <h2>Settings</h2>
        <div class="row top">
          <label>
            Name
            <input name="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Message TTL (seconds)
            <input name="messageTtlSeconds" inputMode="numeric" value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
            <span class="muted small">{Number.isInteger(Number(ttl)) && Number(ttl) > 0 ? duration(Number(ttl)) : ''}: how long offline clients can still get a push.</span>
          </label>
        </div>
        <label class="checkbox">
          <input type="checkbox" name="requireClientToken" checked={requireToken} onChange={(e) => setRequireToken(e.currentTarget.checked)} />
          Clients need a signed token to connect
        </label>
        {/* The ntfy port's access (docs/ntfy.md, "Access"); applies to the next ntfy request. */}
        <div class="row top">
          <label>
            ntfy: without credentials
            <select name="ntfyAnonymousAccess" value={ntfyAnonymous} onChange={(e) => setNtfyAnonymous(NTFY_ANONYMOUS_ACCESS.find((a) => a === e.currentTarget.value) ?? 'read-write')}>
              {NTFY_ANONYMOUS_ACCESS.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </label>
          <label class="checkbox">
            <input type="checkbox" name="ntfyTokensCanPublish" checked={ntfyTokensPublish} onChange={(e) => setNtfyTokensPublish(e.currentTarget.checked)} />
            ntfy: client tokens may publish
          </label>
        </div>
        <div class="row end">
          {saved !== undefined && !dirty && <span class="ok">{saved}</span>}
          {error !== undefined && <span class="error">{error}</span>}
          <button type="submit" class="primary" disabled={!dirty}>
            Save
          </button>
        </div>
      </form>

      <div class="card stack">
        <h2>Keys</h2>
        <div class="keyrow">
          <span class="keylabel">Apikey</span>
          <code data-testid="apikey">{app.apikey}</code>
          <CopyButton text={app.apikey} label="Copy" />
        </div>
        <p class="muted small">Public: clients present it when they connect.</p>
        <div class="keyrow">
          <span class="keylabel">Secret</span>
          <code data-testid="secret">{revealed ? app.secret : '•'.repeat(24)}</code>
          <button type="button" class="small" onClick={() => setRevealed(!revealed)} data-testid="reveal-secret">
            {revealed ? 'Hide' : 'Reveal'}
          </button>
          {revealed && <CopyButton text={app.secret} label="Copy" />}
          <button type="button" class="small danger-outline" onClick={() => setConfirm('rotate')} data-testid="rotate-secret">
            Rotate…
          </button>
        </div>
        <p class="muted small">Private: your back end pushes with it (Authorization: Bearer). Created {dateTime(app.createdAt)}.</p>
        {secretNote !== undefined && <p class="notice">{secretNote}</p>}
      </div>

      <div class="card stack danger-zone">
        <h2>Delete this app</h2>
        <p class="muted small">Its clients are disconnected and its messages deleted. This cannot be undone.</p>
        <div>
          <button type="button" class="danger" onClick={() => setConfirm('delete')}>
            Delete app…
          </button>
        </div>
      </div>

      {confirm === 'rotate' && (
        <ConfirmDialog title="Rotate the secret?" confirmLabel="Rotate secret" danger onConfirm={() => void rotate()} onCancel={() => setConfirm(undefined)}>
          <p>
            The secret of <strong>{app.name}</strong> is replaced by a new one. The old secret stops working at once: back ends and managers using it get
            “unauthorized” until they use the new one.
          </p>
        </ConfirmDialog>
      )}
      {confirm === 'delete' && (
        <ConfirmDialog
          title="Delete the app?"
          confirmLabel="Delete app"
          danger
          typeToConfirm={app.name}
          onConfirm={() => void remove()}
          onCancel={() => setConfirm(undefined)}
        >
          <p>
            Every client of <strong>{app.name}</strong> is disconnected, and its messages and history are deleted.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
