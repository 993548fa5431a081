// Prints what an app ships, minified and gzipped: the ESM entry points bundled
// with esbuild (tree-shaken, minified, code-split). "initial" is what loads up
// front; the MessagePack codec is a lazy chunk loaded only with protocol 'msgpack'.
import { build } from 'esbuild';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

if (!existsSync('dist/index.js')) {
  console.error('dist/ is missing: run `npm run build` first');
  process.exit(1);
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

async function measure(label, contents, external = []) {
  const outdir = mkdtempSync(join(tmpdir(), 'hubbub-size-'));
  try {
    const result = await build({
      stdin: { contents, resolveDir: process.cwd(), loader: 'js', sourcefile: 'entry.js' },
      bundle: true,
      minify: true,
      splitting: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      outdir,
      metafile: true,
      write: false,
      external,
    });
    const files = new Map(result.outputFiles.map((f) => [relative(process.cwd(), f.path), f.contents]));
    const outputs = result.metafile.outputs;
    const entry = Object.keys(outputs).find((k) => outputs[k].entryPoint);
    // Everything the entry imports statically loads up front; dynamic imports load later.
    const initial = new Set();
    const visit = (file) => {
      if (initial.has(file)) return;
      initial.add(file);
      for (const imp of outputs[file].imports) if (imp.kind === 'import-statement' && !imp.external) visit(imp.path);
    };
    visit(entry);
    const size = (names) => {
      const parts = [...names].map((n) => files.get(n));
      const joined = Buffer.concat(parts.map((p) => Buffer.from(p)));
      return { min: joined.length, gz: gzipSync(joined, { level: 9 }).length };
    };
    const up = size(initial);
    const lazyNames = new Set();
    const visitLazy = (file) => {
      for (const imp of outputs[file].imports) {
        if (imp.external || initial.has(imp.path) || lazyNames.has(imp.path)) continue;
        lazyNames.add(imp.path);
        visitLazy(imp.path);
      }
    };
    for (const file of initial) visitLazy(file);
    const lazy = lazyNames.size ? size(lazyNames) : undefined;
    console.log(
      `${label.padEnd(44)} initial ${kib(up.min).padStart(9)} min ${kib(up.gz).padStart(8)} min+gz` +
        (lazy ? `   + lazy msgpack chunk ${kib(lazy.gz)} min+gz` : ''),
    );
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

await measure('@hubbub/client (every export)', "export * from './dist/index.js';");
await measure('browser app: Hubbub + coalesce', "export { Hubbub, coalesce } from './dist/index.js';");
await measure('backend: HubbubPublisher', "export { HubbubPublisher } from './dist/index.js';");
await measure('@hubbub/client/react (react external)', "export * from './dist/react.js';", ['react']);
