import { useEffect, useState } from 'preact/hooks';
import { api, errorText, type ClientPage } from '../api.js';
import { ago, count, dateTime } from '../format.js';
import { usePoll } from '../hooks.js';
import { appHref, navigate } from '../router.js';

/**
 * How often the list is fetched, ms. Joins and leaves must show within a second; a
 * request takes a few ms, so half a second leaves room.
 */
const REFRESH_MS = 500;
const PAGE_SIZES = [50, 100, 200] as const;

export function ClientsTab(props: { apikey: string; selected: ReadonlySet<string>; setSelected: (s: ReadonlySet<string>) => void }) {
  const { apikey, selected, setSelected } = props;
  const [searchInput, setSearchInput] = useState('');
  const [search, setSearch] = useState('');
  const [offset, setOffset] = useState(0);
  const [limit, setLimit] = useState<number>(100);
  const [page, setPage] = useState<ClientPage | undefined>(undefined);
  const [now, setNow] = useState(Date.now());
  const [error, setError] = useState<string | undefined>(undefined);

  // Typing narrows the list after a short pause, from the first page.
  useEffect(() => {
    const t = setTimeout(() => {
      setSearch(searchInput.trim());
      setOffset(0);
    }, 150);
    return () => clearTimeout(t);
  }, [searchInput]);

  usePoll(
    async (signal) => {
      try {
        const p = await api.clients(apikey, { search, offset, limit });
        if (signal.aborted) return;
        // The list shrank under us (clients left): show the last page that has rows.
        if (p.clients.length === 0 && offset > 0 && p.total > 0) {
          setOffset(Math.max(0, Math.floor((p.total - 1) / limit) * limit));
          return;
        }
        setPage(p);
        setNow(Date.now());
        setError(undefined);
      } catch (err) {
        if (!signal.aborted) setError(errorText(err));
      }
    },
    REFRESH_MS,
    [apikey, search, offset, limit],
  );

  const rows = page?.clients ?? [];
  const total = page?.total ?? 0;
  const allOnPage = rows.length > 0 && rows.every((c) => selected.has(c.clientId));
  const toggle = (id: string): void => {
    const next = new Set(selected);
    if (!next.delete(id)) next.add(id);
    setSelected(next);
  };
  const togglePage = (): void => {
    const next = new Set(selected);
    for (const c of rows) {
      if (allOnPage) next.delete(c.clientId);
      else next.add(c.clientId);
    }
    setSelected(next);
  };

  return (
    <div class="stack">
      <div class="toolbar">
        <input
          type="search"
          class="search"
          placeholder="Search client ids…"
          aria-label="Search client ids"
          value={searchInput}
          onInput={(e) => setSearchInput(e.currentTarget.value)}
          data-testid="client-search"
        />
        <span class="muted" data-testid="clients-total">
          {page === undefined ? 'Loading…' : `${count(total)} ${search === '' ? 'online' : 'matching'}`}
        </span>
        <span class="spacer" />
        {selected.size > 0 && (
          <span class="selection">
            <strong>{count(selected.size)}</strong> selected
            <button type="button" class="primary small" onClick={() => navigate(appHref(apikey, 'push'))}>
              Push to selected
            </button>
            <button type="button" class="ghost small" onClick={() => setSelected(new Set())}>
              Clear
            </button>
          </span>
        )}
      </div>
      {error !== undefined && <p class="error">{error}</p>}
      <div class="card table-card">
        <table class="table clients" data-testid="clients-table">
          <thead>
            <tr>
              <th class="check">
                <input type="checkbox" aria-label="Select every client on this page" checked={allOnPage} onChange={togglePage} />
              </th>
              <th>Client id</th>
              <th>Connector</th>
              <th>Tags</th>
              <th>Connected</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.clientId} data-client-id={c.clientId} class={selected.has(c.clientId) ? 'selected' : ''}>
                <td class="check">
                  <input type="checkbox" aria-label={`Select ${c.clientId}`} checked={selected.has(c.clientId)} onChange={() => toggle(c.clientId)} />
                </td>
                <td>
                  <code>{c.clientId}</code>
                </td>
                <td>
                  <span class="pill">{c.connector}</span>
                </td>
                <td>
                  {c.tags.length === 0 ? (
                    <span class="muted">–</span>
                  ) : (
                    c.tags.map((t) => (
                      <span key={t} class="tag">
                        {t}
                      </span>
                    ))
                  )}
                </td>
                <td title={dateTime(c.connectedAt)}>{ago(c.connectedAt, now)}</td>
              </tr>
            ))}
            {page !== undefined && rows.length === 0 && (
              <tr>
                <td colSpan={5} class="empty">
                  {search === '' ? 'No client is online. Connect one and it shows here within a second.' : `No client id contains “${search}”.`}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <div class="pager">
        <span class="muted" data-testid="clients-range">
          {total === 0 ? '' : `${count(offset + 1)}–${count(Math.min(offset + rows.length, total))} of ${count(total)}`}
        </span>
        <span class="spacer" />
        <label class="inline">
          Rows
          <select
            value={String(limit)}
            onChange={(e) => {
              setLimit(Number(e.currentTarget.value));
              setOffset(0);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <button type="button" disabled={offset === 0} onClick={() => setOffset(0)}>
          « First
        </button>
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - limit))}>
          ‹ Previous
        </button>
        <button type="button" disabled={offset + limit >= total} onClick={() => setOffset(offset + limit)} data-testid="clients-next">
          Next ›
        </button>
        <button type="button" disabled={offset + limit >= total} onClick={() => setOffset(Math.max(0, Math.floor((total - 1) / limit) * limit))}>
          Last »
        </button>
      </div>
    </div>
  );
}
