// Vite builds the page into www/dist/ (scripts/serve serves that at /, and the repository's models/
// at /models/). `npm run dev` serves the sources with the same /models/ route, so the default
// model loads in development too.
import { createReadStream, statSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const modelsDir = join(here, '..', 'models');

function serveModels(): Plugin {
  return {
    name: 'quantscope-models',
    configureServer(server) {
      server.middlewares.use('/models', (req, res, next) => {
        const path = normalize(join(modelsDir, decodeURIComponent((req.url ?? '/').split('?')[0])));
        if (!path.startsWith(modelsDir + sep)) return next();
        let size: number;
        try {
          size = statSync(path).size;
        } catch {
          return next();
        }
        res.setHeader('Content-Type', 'application/octet-stream');
        res.setHeader('Content-Length', String(size));
        createReadStream(path).pipe(res);
      });
    },
  };
}

export default defineConfig({
  root: here,
  base: './',
  plugins: [serveModels()],
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The wasm is one ~MB asset: the warning is about JS chunks, which stay small.
    chunkSizeWarningLimit: 2048,
  },
});
