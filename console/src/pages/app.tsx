import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, errorText, type AppInfo } from '../api.js';
import { count } from '../format.js';
import { usePoll } from '../hooks.js';
import { appHref, onLinkClick, type Tab } from '../router.js';
import { seriesFor } from '../stats.js';
import { ChartsTab } from '../tabs/charts.js';
import { ClientsTab } from '../tabs/clients.js';
import { HistoryTab } from '../tabs/history.js';
import { PushTab } from '../tabs/push.js';
import { SettingsTab } from '../tabs/settings.js';

const TAB_LABELS: Readonly<Record<Tab, string>> = {
  clients: 'Clients',
  push: 'Push',
  history: 'History',
  charts: 'Charts',
  settings: 'Settings',
};

/** Sampling period of GET /stats, ms: the charts' resolution. */
const STATS_EVERY_MS = 1000;

export function AppPage(props: { apikey: string; tab: Tab }) {
  const { apikey, tab } = props;
  const [app, setApp] = useState<AppInfo | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  // Chosen in the Clients tab, used as the Push tab's target; kept while switching tabs.
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const series = seriesFor(apikey);
  const [, setTick] = useState(0);

  useEffect(() => {
    api.app(apikey).then(setApp, (err: unknown) =>
      setError(err instanceof ApiError && err.status === 404 ? 'There is no app with this apikey (it may have been deleted).' : errorText(err)),
    );
  }, [apikey]);

  useEffect(() => series.subscribe(() => setTick((n) => n + 1)), [series]);

  usePoll(
    async (signal) => {
      const s = await api.stats(apikey);
      if (!signal.aborted) series.add(s);
    },
    STATS_EVERY_MS,
    [apikey],
  );

  if (error !== undefined) {
    return (
      <section class="page">
        <p class="error">{error}</p>
        <a href="/" onClick={onLinkClick}>
          ← All apps
        </a>
      </section>
    );
  }
  if (app === undefined) return <section class="page muted">Loading…</section>;

  const latest = series.latest;
  return (
    <section class="page">
      <div class="page-head">
        <div>
          <a href="/" onClick={onLinkClick} class="crumb">
            Apps /
          </a>
          <h1 data-testid="app-name">{app.name}</h1>
          <code class="muted small">{app.apikey}</code>
        </div>
        <dl class="kpis">
          <div>
            <dt>Online</dt>
            <dd data-testid="kpi-online">{latest ? count(latest.online) : '–'}</dd>
          </div>
          <div>
            <dt>Delivered/s</dt>
            <dd>{latest?.delivered != null ? count(Math.round(latest.delivered)) : '–'}</dd>
          </div>
          <div>
            <dt>Acked/s</dt>
            <dd>{latest?.acked != null ? count(Math.round(latest.acked)) : '–'}</dd>
          </div>
        </dl>
      </div>
      <nav class="tabs" role="tablist">
        {(Object.keys(TAB_LABELS) as Tab[]).map((t) => (
          <a
            key={t}
            role="tab"
            aria-selected={t === tab}
            class={t === tab ? 'tab active' : 'tab'}
            href={appHref(apikey, t)}
            onClick={onLinkClick}
            data-testid={`tab-${t}`}
          >
            {TAB_LABELS[t]}
            {t === 'push' && selected.size > 0 ? <span class="badge">{selected.size}</span> : null}
          </a>
        ))}
      </nav>
      <div class="tab-body" role="tabpanel">
        {tab === 'clients' && <ClientsTab apikey={apikey} selected={selected} setSelected={setSelected} />}
        {tab === 'push' && <PushTab app={app} selected={selected} setSelected={setSelected} />}
        {tab === 'history' && <HistoryTab apikey={apikey} />}
        {tab === 'charts' && <ChartsTab series={series} />}
        {tab === 'settings' && <SettingsTab app={app} onChange={setApp} />}
      </div>
    </section>
  );
}
