import { useEffect, useRef } from 'preact/hooks';

/**
 * Runs `fn` now and then again `intervalMs` after each run settles (never two at once),
 * while the page is visible. Changing `deps` restarts it at once.
 */
export function usePoll(fn: (signal: AbortSignal) => Promise<void>, intervalMs: number, deps: readonly unknown[]): void {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let running = false;
    const tick = async (): Promise<void> => {
      clearTimeout(timer);
      timer = undefined;
      if (ctl.signal.aborted || running) return;
      if (document.hidden) return; // resumed by visibilitychange
      running = true;
      try {
        await latest.current(ctl.signal);
      } catch {
        // The callback shows its own errors; polling goes on.
      } finally {
        running = false;
      }
      if (!ctl.signal.aborted) timer = setTimeout(() => void tick(), intervalMs);
    };
    const onVisible = (): void => {
      if (!document.hidden && timer === undefined && !running) void tick();
    };
    document.addEventListener('visibilitychange', onVisible);
    void tick();
    return () => {
      ctl.abort();
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [intervalMs, ...deps]);
}
