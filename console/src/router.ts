// A tiny router over the History API: the server answers index.html for every console
// path (src/api/console-files.ts), so a reload or a shared link opens the same page.
import { useEffect, useState } from 'preact/hooks';

export type Tab = 'clients' | 'push' | 'history' | 'charts' | 'settings';
export const TABS: readonly Tab[] = ['clients', 'push', 'history', 'charts', 'settings'];

export type Route = { readonly page: 'apps' } | { readonly page: 'app'; readonly apikey: string; readonly tab: Tab };

export function parseRoute(pathname: string): Route {
  const parts = pathname.split('/').filter((p) => p !== '');
  if (parts[0] === 'apps' && parts[1] !== undefined) {
    let apikey: string;
    try {
      apikey = decodeURIComponent(parts[1]);
    } catch {
      return { page: 'apps' };
    }
    const tab = TABS.find((t) => t === parts[2]) ?? 'clients';
    return { page: 'app', apikey, tab };
  }
  return { page: 'apps' };
}

export function appHref(apikey: string, tab: Tab = 'clients'): string {
  return `/apps/${encodeURIComponent(apikey)}/${tab}`;
}

const listeners = new Set<() => void>();

export function navigate(href: string, replace = false): void {
  if (href === location.pathname) return;
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  for (const fn of listeners) fn();
}

addEventListener('popstate', () => {
  for (const fn of listeners) fn();
});

export function useRoute(): Route {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const fn = (): void => setPath(location.pathname);
    listeners.add(fn);
    return () => {
      listeners.delete(fn);
    };
  }, []);
  return parseRoute(path);
}

/** An in-app link: plain clicks navigate without a reload; modified clicks open a tab as usual. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? undefined;
  if (a === undefined) return;
  e.preventDefault();
  navigate(a.pathname);
}
