// A live bookings board: the connection state and one row per booking, kept
// in step with the topic by `sync()`: the board is loaded (here from the
// hub's history, in an app from its own API), then every publication after
// the loaded position is applied in order, none twice, none missed; when the
// hub says publications were lost, the board is loaded again.
import { Hubbub, coalesce } from '@hubbub/client';

const params = new URLSearchParams(location.search);
const hubUrl = params.get('hub') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const token = params.get('token') ?? '';
const topic = params.get('topic') ?? 'bookings:42';
const protocol = params.get('protocol') === 'msgpack' ? 'msgpack' : 'json';
// Simulates a slow application API (ms before the load reads), to watch the handoff.
const loadDelayMs = Number(params.get('loadDelay') ?? 0);

const $ = (id) => document.getElementById(id);
$('topic').textContent = topic;

const client = new Hubbub({ url: hubUrl, getToken: () => token, protocol });
/** What the board knows about each load: the position read before it, and what it covered. */
const loads = [];
/** Every offset `sync` handed to `apply` (each once, in order). */
const applied = [];

// ---- connection state -------------------------------------------------------

client.on('state', (state) => {
  $('state').textContent = state;
  $('state').dataset.state = state;
  $('transport').textContent = state === 'connected' ? `via ${client.transportKind}` : '';
});
client.on('disconnected', ({ code, reason, reconnect, delayMs }) => {
  $('detail').textContent = reconnect
    ? `closed ${code} ${reason}; reconnecting${delayMs === undefined ? ' when back online' : ` in ${delayMs} ms`}`
    : `closed ${code} ${reason}; not reconnecting`;
  log(`disconnected ${code} ${reason}`);
});
client.on('connected', () => {
  $('detail').textContent = '';
  log('connected');
});

// ---- bookings ------------------------------------------------------------------

/**
 * The board's state: a row per booking, and `upTo`, the offset of the newest
 * publication the load already covered (older ones are ignored when applied).
 * @typedef {{ rows: Map<string, {id: string, guest?: string, nights?: number, status?: string, updatedAt?: number}>, upTo: number }} Board
 */

/**
 * Loads the board. An app would call its own API; this example reads the
 * hub's history. `at` is the topic's position read just before the load.
 */
async function load(at) {
  if (loadDelayMs > 0) await new Promise((r) => setTimeout(r, loadDelayMs));
  const { publications, position } = await client.history(topic, { limit: 1000 });
  /** @type {Board} */
  const board = { rows: new Map(), upTo: position.offset };
  for (const pub of publications) applyRow(board.rows, pub);
  loads.push({ readAt: at.offset, upTo: position.offset });
  log(`loaded ${board.rows.size} bookings up to ${position.offset}`);
  return board;
}

/** Applies one publication (`sync` passes its offset; older than the load: already in it). */
function apply(board, pub) {
  applied.push(pub.offset);
  if (pub.offset <= board.upTo) return board;
  applyRow(board.rows, pub);
  return board;
}

function applyRow(rows, pub) {
  const data = pub.data ?? {};
  if (typeof data.id !== 'string' && typeof data.id !== 'number') {
    // Said, not silently dropped: the board keys its rows by `data.id`.
    log(`ignored ${pub.event} at offset ${pub.offset}: its data has no "id" (the board's bookings look like {"id":"1001","guest":"Ada","nights":3,"status":"confirmed"})`);
    return;
  }
  const id = String(data.id);
  if (pub.event === 'booking.created' || pub.event === 'booking.updated') {
    rows.set(id, { ...rows.get(id), ...data, id, updatedAt: pub.ts });
  }
}

// Bursts of events (a bulk import) re-render once per animation-sized window.
const render = coalesce(
  () => {
    const bookings = synced.state?.rows ?? new Map();
    const rows = [...bookings.values()].sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
    const tbody = $('rows');
    const existing = new Map([...tbody.children].map((tr) => [tr.dataset.bookingId, tr]));
    for (const b of rows) {
      let tr = existing.get(b.id);
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.bookingId = b.id;
        tr.innerHTML = '<td class="id"></td><td class="guest"></td><td class="nights"></td><td class="status"></td><td class="ts"></td>';
      }
      existing.delete(b.id);
      tr.querySelector('.id').textContent = b.id;
      tr.querySelector('.guest').textContent = b.guest ?? '';
      tr.querySelector('.nights').textContent = b.nights ?? '';
      tr.querySelector('.status').textContent = b.status ?? '';
      tr.querySelector('.ts').textContent = b.updatedAt ? new Date(b.updatedAt).toLocaleTimeString() : '';
      tbody.appendChild(tr); // keeps sort order; moves an existing row
    }
    for (const stale of existing.values()) stale.remove();
    $('count').textContent = String(bookings.size);
    $('board').hidden = bookings.size === 0;
    $('empty').hidden = bookings.size !== 0;
    const pos = synced.position;
    $('position').textContent = pos ? `${pos.epoch}:${pos.offset}` : '–';
    $('reloads').textContent = String(loads.length);
  },
  { waitMs: 16, maxWaitMs: 100 },
);

let synced = null;
if (token) {
  // connect() first: sync() reads the topic's position at once, and a client
  // that was never told to connect refuses commands.
  client.connect();
  synced = client.sync(topic, { load, apply });
  synced.on('change', () => render());
  synced.on('status', (status) => log(`board ${status}`));
  synced.on('error', (err) => log(`board: ${err.code} ${err.message}`));
}

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastChild.remove();
}

if (!token) {
  $('detail').textContent = 'pass ?hub=ws://HOST:PORT/ws&token=JWT (a token that may subscribe to bookings:42) in the address';
}
// For the console (and tests).
window.board = { client, get synced() { return synced; }, loads, applied };
