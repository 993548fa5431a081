// Type-checks the TypeScript snippets of the READMEs, extracted from the
// Markdown each run so they cannot drift from the SDK: every ```ts / ```tsx
// block becomes a module under test/types/snippets/ (generated, not checked
// in) and `tsc -p tsconfig.snippets.json` compiles them against src/.
// Names a snippet uses but does not define (the app's own `addRow`, `Guest`,
// a `hub` made in an earlier snippet) are declared in test/types/snippet-globals.d.ts.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(root, '..');
const sources = ['README.md', 'client-sdk-ts/README.md', 'docs/examples/README.md'];
const out = join(root, 'test/types/snippets');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

let count = 0;
for (const source of sources) {
  let text;
  try {
    text = readFileSync(join(repo, source), 'utf8');
  } catch {
    continue;
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|tsx|typescript)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(indent));
    const ext = open[2] === 'tsx' ? 'tsx' : 'ts';
    const name = `${source.replace(/[^a-z0-9]+/gi, '_')}_L${i + 1}.${ext}`;
    writeFileSync(join(out, name), `// ${source} line ${i + 1}\n${body.join('\n')}\nexport {};\n`);
    count++;
    i = j;
  }
}
if (count === 0) throw new Error('no TypeScript snippets found in the READMEs');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.snippets.json')], { stdio: 'inherit', cwd: root });
} catch {
  console.error(`README snippets do not type-check (generated files in ${relative(process.cwd(), out)})`);
  process.exit(1);
}
console.log(`${count} README snippets type-check`);
