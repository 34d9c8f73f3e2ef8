// The web console's build: `vite build console` (this folder is the root) writes console/dist, which the HTTP
// server serves at `/` (src/api/console-files.ts). Everything the page needs is in the
// bundle: no fonts, scripts or styles from elsewhere at run time.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  // Preact's automatic JSX runtime, without a framework plugin.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
  server: {
    // `npx vite console` during development: the API of a server on the default port.
    proxy: { '/api': 'http://127.0.0.1:3001' },
  },
});
