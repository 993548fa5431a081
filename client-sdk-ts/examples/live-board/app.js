// A live bookings board: the connection state, one row per booking as
// `booking.created` / `booking.updated` arrive, and a full reload from history
// when the hub says publications were lost (`reset`).
import { Hubbub, coalesce } from '@hubbub/client';

const params = new URLSearchParams(location.search);
const hubUrl = params.get('hub') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const token = params.get('token') ?? '';
const topic = params.get('topic') ?? 'bookings';
const protocol = params.get('protocol') === 'msgpack' ? 'msgpack' : 'json';

const $ = (id) => document.getElementById(id);
$('topic').textContent = topic;

/** @type {Map<string, {id: string, guest?: string, seats?: number, status?: string, updatedAt?: number}>} */
const bookings = new Map();
let reloads = 0;

const client = new Hubbub({ url: hubUrl, getToken: () => token, protocol });
const sub = client.subscribe(topic);

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

/** Applies one publication to the board. Idempotent: applying it twice changes nothing. */
function apply(pub) {
  const data = pub.data ?? {};
  if (typeof data.id !== 'string' && typeof data.id !== 'number') return;
  const id = String(data.id);
  if (pub.event === 'booking.created' || pub.event === 'booking.updated') {
    bookings.set(id, { ...bookings.get(id), ...data, id, updatedAt: pub.ts });
  }
}

// Bursts of events (a bulk import) re-render once per animation-sized window.
const render = coalesce(
  () => {
    const rows = [...bookings.values()].sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
    const tbody = $('rows');
    const existing = new Map([...tbody.children].map((tr) => [tr.dataset.bookingId, tr]));
    for (const b of rows) {
      let tr = existing.get(b.id);
      if (!tr) {
        tr = document.createElement('tr');
        tr.dataset.bookingId = b.id;
        tr.innerHTML = '<td class="id"></td><td class="guest"></td><td class="seats"></td><td class="status"></td><td class="ts"></td>';
      }
      existing.delete(b.id);
      tr.querySelector('.id').textContent = b.id;
      tr.querySelector('.guest').textContent = b.guest ?? '';
      tr.querySelector('.seats').textContent = b.seats ?? '';
      tr.querySelector('.status').textContent = b.status ?? 'new';
      tr.querySelector('.ts').textContent = b.updatedAt ? new Date(b.updatedAt).toLocaleTimeString() : '';
      tbody.appendChild(tr); // keeps sort order; moves an existing row
    }
    for (const stale of existing.values()) stale.remove();
    $('count').textContent = String(bookings.size);
    $('board').hidden = bookings.size === 0;
    $('empty').hidden = bookings.size !== 0;
    const pos = sub.position;
    $('position').textContent = pos ? `${pos.epoch}:${pos.offset}` : '–';
    $('reloads').textContent = String(reloads);
  },
  { waitMs: 16, maxWaitMs: 100 },
);

let reloading = null; // publications that arrive during a reload, re-applied after it
sub.on('publication', (pub) => {
  reloading?.push(pub);
  apply(pub);
  render();
});

/** Rebuilds the board from the hub's history (on first load and after `reset`). */
async function reload(why) {
  log(`reload (${why})`);
  reloading = [];
  try {
    const { publications, position } = await sub.history({ limit: 1000 });
    bookings.clear();
    for (const pub of publications) apply(pub);
    for (const pub of reloading) if (pub.offset > position.offset) apply(pub);
    reloads += 1;
  } catch (err) {
    log(`reload failed: ${err.code ?? ''} ${err.message}`);
  } finally {
    reloading = null;
    render();
  }
}

sub.on('subscribed', ({ recovered }) => {
  // The first subscribe has nothing to recover: load what happened before the page opened.
  if (recovered === undefined && reloads === 0) void reload('initial');
});
sub.on('reset', () => void reload('reset: publications were lost'));
sub.on('error', (err) => log(`subscription failed: ${err.code} ${err.message}`));

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastChild.remove();
}

if (!token) {
  $('detail').textContent = 'pass ?hub=ws://HOST:PORT/ws&token=JWT in the address';
} else {
  client.connect();
}
// For the console (and tests).
window.board = { client, sub, bookings };
