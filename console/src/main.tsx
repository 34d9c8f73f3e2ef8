import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, errorText, onUnauthorized, type Session } from './api.js';
import { AppPage } from './pages/app.js';
import { AppsPage } from './pages/apps.js';
import { LoginPage } from './pages/login.js';
import { navigate, onLinkClick, useRoute } from './router.js';
import 'uplot/dist/uPlot.min.css';
import './styles.css';

type State = { readonly kind: 'checking' } | { readonly kind: 'out'; readonly notice?: string } | { readonly kind: 'in'; readonly session: Session };

function Console() {
  const [state, setState] = useState<State>({ kind: 'checking' });
  const route = useRoute();

  useEffect(() => {
    api.session().then(
      (session) => setState(session ? { kind: 'in', session } : { kind: 'out' }),
      (err: unknown) => setState({ kind: 'out', notice: errorText(err) }),
    );
    return onUnauthorized(() => setState({ kind: 'out', notice: 'Your session has ended. Please log in again.' }));
  }, []);

  useEffect(() => {
    document.title = state.kind === 'out' ? 'Log in · Shaddock' : 'Shaddock console';
  }, [state.kind]);

  if (state.kind === 'checking') return <div class="splash" aria-busy="true" />;
  if (state.kind === 'out') {
    return <LoginPage {...(state.notice !== undefined ? { notice: state.notice } : {})} onLogin={(session) => setState({ kind: 'in', session })} />;
  }

  const logout = async (): Promise<void> => {
    try {
      await api.logout();
    } catch {
      // Logged out locally either way; the cookie expires on its own.
    }
    setState({ kind: 'out', notice: 'You are logged out.' });
    navigate('/', true);
  };

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href="/" onClick={onLinkClick}>
          <span class="logo" aria-hidden="true" />
          Shaddock
        </a>
        <nav class="topnav">
          <a href="/" onClick={onLinkClick} class={route.page === 'apps' ? 'active' : ''}>
            Apps
          </a>
        </nav>
        <div class="who">
          <span data-testid="username">{state.session.username}</span>
          <button type="button" class="ghost" onClick={() => void logout()}>
            Log out
          </button>
        </div>
      </header>
      <main class="content">{route.page === 'app' ? <AppPage key={route.apikey} apikey={route.apikey} tab={route.tab} /> : <AppsPage />}</main>
    </div>
  );
}

const root = document.getElementById('root');
if (root) render(<Console />, root);
