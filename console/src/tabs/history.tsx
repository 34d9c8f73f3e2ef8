import { useState } from 'preact/hooks';
import { api, errorText, type HistoryPage, type Message, type MessageDetail, type Target } from '../api.js';
import { count, dateTime, duration, preview } from '../format.js';
import { usePoll } from '../hooks.js';

/** Receipts move as clients receive and ack: refresh the page shown once a second. */
const REFRESH_MS = 1000;
const PAGE = 50;

function targetText(t: Target): string {
  if (t.all) return 'all';
  const parts: string[] = [];
  if (t.clientIds.length > 0) parts.push(`${t.clientIds.length === 1 ? 'client' : 'clients'} ${t.clientIds.slice(0, 3).join(', ')}${t.clientIds.length > 3 ? ` +${t.clientIds.length - 3}` : ''}`);
  if (t.tags.length > 0) parts.push(`tags ${t.tags.join(', ')}`);
  return parts.join('; ');
}

function Bar(props: { value: number; of: number; kind: 'delivered' | 'acked' }) {
  const pct = props.of > 0 ? Math.min(100, (props.value / props.of) * 100) : 0;
  return (
    <span class="receipt-cell">
      <span class={`bar ${props.kind}`}>
        <span style={{ width: `${pct}%` }} />
      </span>
      <span class="num">{count(props.value)}</span>
    </span>
  );
}

export function HistoryTab(props: { apikey: string }) {
  const { apikey } = props;
  // Older pages: the `before` cursors walked so far (empty: the newest page).
  const [cursors, setCursors] = useState<readonly number[]>([]);
  const [page, setPage] = useState<HistoryPage | undefined>(undefined);
  const [open, setOpen] = useState<number | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const before = cursors[cursors.length - 1];

  usePoll(
    async (signal) => {
      try {
        const p = await api.history(apikey, { limit: PAGE, ...(before !== undefined ? { before } : {}) });
        if (signal.aborted) return;
        setPage(p);
        setError(undefined);
      } catch (err) {
        if (!signal.aborted) setError(errorText(err));
      }
    },
    REFRESH_MS,
    [apikey, before],
  );

  const messages = page?.messages ?? [];
  return (
    <div class="stack">
      <div class="toolbar">
        <span class="muted">{cursors.length === 0 ? 'Newest messages first; receipts update every second.' : `Older messages (page ${cursors.length + 1})`}</span>
        <span class="spacer" />
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>
          Newest
        </button>
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          ‹ Newer
        </button>
        <button type="button" disabled={page?.nextBefore == null} onClick={() => page?.nextBefore != null && setCursors([...cursors, page.nextBefore])}>
          Older ›
        </button>
      </div>
      {error !== undefined && <p class="error">{error}</p>}
      <div class="card table-card">
        <table class="table history" data-testid="history-table">
          <thead>
            <tr>
              <th>Id</th>
              <th>Time</th>
              <th>Event</th>
              <th>Target</th>
              <th>Payload</th>
              <th>TTL</th>
              <th class="num">Targeted</th>
              <th>Delivered</th>
              <th>Acked</th>
            </tr>
          </thead>
          <tbody>
            {messages.map((m) => (
              <Row key={m.id} apikey={apikey} m={m} open={open === m.id} onToggle={() => setOpen(open === m.id ? undefined : m.id)} />
            ))}
            {page !== undefined && messages.length === 0 && (
              <tr>
                <td colSpan={9} class="empty">
                  Nothing pushed yet (or it all expired).
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Row(props: { apikey: string; m: Message; open: boolean; onToggle: () => void }) {
  const { m } = props;
  return (
    <>
      <tr class={props.open ? 'clickable open' : 'clickable'} onClick={props.onToggle} data-message-id={m.id}>
        <td>
          <strong>#{m.id}</strong>
        </td>
        <td title={m.createdAt}>{dateTime(m.createdAt)}</td>
        <td>
          <code>{m.event}</code>
        </td>
        <td class="wrap">{targetText(m.target)}</td>
        <td class="payload" title={preview(m.data, 2000)}>
          <code>{preview(m.data, 80)}</code>
        </td>
        <td>{duration(m.ttl)}</td>
        <td class="num" data-receipt="targeted">
          {count(m.receipt.targeted)}
        </td>
        <td data-receipt="delivered">
          <Bar value={m.receipt.delivered} of={m.receipt.targeted} kind="delivered" />
        </td>
        <td data-receipt="acked">
          <Bar value={m.receipt.acked} of={m.receipt.targeted} kind="acked" />
        </td>
      </tr>
      {props.open && (
        <tr class="detail">
          <td colSpan={9}>
            <Detail apikey={props.apikey} id={m.id} />
          </td>
        </tr>
      )}
    </>
  );
}

function Detail(props: { apikey: string; id: number }) {
  const [detail, setDetail] = useState<MessageDetail | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  usePoll(
    async (signal) => {
      try {
        const d = await api.message(props.apikey, props.id);
        if (!signal.aborted) setDetail(d);
      } catch (err) {
        if (!signal.aborted) setError(errorText(err));
      }
    },
    REFRESH_MS,
    [props.apikey, props.id],
  );
  if (error !== undefined) return <p class="error">{error}</p>;
  if (detail === undefined) return <p class="muted">Loading…</p>;
  return (
    <div class="detail-grid">
      <div>
        <h3>Payload</h3>
        <pre>{JSON.stringify(detail.data, null, 2)}</pre>
        <p class="muted small">Expires {dateTime(detail.expiresAt)}</p>
      </div>
      <div>
        <h3>Recipients</h3>
        {detail.recipients.length === 0 ? (
          <p class="muted small">Per-client states are kept for pushes to named clients; this one went to {targetText(detail.target)}.</p>
        ) : (
          <table class="table compact">
            <tbody>
              {detail.recipients.slice(0, 500).map((r) => (
                <tr key={r.clientId}>
                  <td>
                    <code>{r.clientId}</code>
                  </td>
                  <td>
                    <span class={`state ${r.state}`}>{r.state}</span>
                  </td>
                  <td class="muted small">
                    {r.ackedAt !== undefined
                      ? `acked ${dateTime(r.ackedAt)}`
                      : r.deliveredAt !== undefined
                        ? `delivered ${dateTime(r.deliveredAt)}`
                        : r.skippedAt !== undefined
                          ? `skipped ${dateTime(r.skippedAt)}: ${r.reason ?? ''}`
                          : ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}
