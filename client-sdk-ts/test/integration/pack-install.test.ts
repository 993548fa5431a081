// The README's install from the folder: `npm pack` (its `prepare` builds
// dist/) and `npm install <the .tgz>` into an empty project, then plain Node
// imports the installed package and publishes to a real hub with it.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type RunningHub } from '../support/hub.js';

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let hub: RunningHub;
let dir: string;
beforeAll(async () => {
  hub = await startHub();
  dir = await mkdtemp(join(tmpdir(), 'hubbub-pack-'));
});
afterAll(async () => {
  await hub?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm pack + npm install of the folder', () => {
  it('installs a built package that plain Node imports and publishes with', async () => {
    const quiet = { cwd: sdkRoot, stdio: ['ignore', 'pipe', 'pipe'] as ('ignore' | 'pipe')[], encoding: 'utf8' as const };
    execFileSync(npm, ['pack', '--pack-destination', dir, '--silent'], quiet);
    const tgz = (await readdir(dir)).find((f) => f.endsWith('.tgz'));
    expect(tgz).toMatch(/^hubbub-client-.*\.tgz$/);
    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // --prefer-offline: @msgpack/msgpack comes from the cache `npm ci` filled.
    execFileSync(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tgz!)], { ...quiet, cwd: app });
    await writeFile(
      join(app, 'publish.mjs'),
      `import { Hubbub, HubbubPublisher } from '@hubbub/client';
if (typeof Hubbub !== 'function') throw new Error('no Hubbub export');
const publisher = new HubbubPublisher({ url: process.env.HUB, apiKey: process.env.KEY });
const { position } = await publisher.publish('bookings:42', 'booking.created', { id: '1001', guest: 'Ada', nights: 3, status: 'confirmed' });
console.log(position.offset);
`,
    );
    const out = execFileSync(process.execPath, ['publish.mjs'], {
      ...quiet,
      cwd: app,
      env: { ...process.env, HUB: hub.httpUrl, KEY: hub.apiKey },
    });
    expect(out.trim()).toBe('1');
  });
});
