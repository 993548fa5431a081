// Hubbub operations console: plain modern JavaScript, no dependencies, no
// network beyond this hub. Everything it shows comes from the hub's public
// REST API (documented in /api/openapi.json) and from /sse with a
// short-lived subscribe token minted by POST /api/v1/tokens/subscribe.
// The operator key lives in sessionStorage only (this tab, until it closes).

const KEY_STORAGE = 'hubbub.operatorKey';
const REFRESH_MS = 2000;
const TAIL_ROWS = 500;
const HISTORY_ROWS = 50;

const $ = (id) => document.getElementById(id);

/** Builds an element; children are nodes or text (never parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** A failed REST call: HTTP status (0: no answer), contract code, message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let operatorKey = sessionStorage.getItem(KEY_STORAGE);

async function api(path, { method = 'GET', body } = {}) {
  const headers = { authorization: `Bearer ${operatorKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'network', `cannot reach the hub (${err.message})`);
  }
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const e = parsed && parsed.error;
    throw new ApiError(res.status, e ? e.code : `http_${res.status}`, e ? e.message : text.trim() || res.statusText);
  }
  return parsed;
}

/** What a person should read when signing in fails, and what to do next. */
function signInProblem(err) {
  switch (err.status) {
    case 401:
      return {
        title: 'This key is not one of this hub\'s API keys.',
        next: 'Check that you pasted the whole key. The hub knows keys only by their SHA-256, the key_sha256 of an [[api_keys]] entry in its configuration.',
      };
    case 403:
      return {
        title: 'This key is valid, but it is not an operator key.',
        next: 'Add `operator = true` to its [[api_keys]] entry in the hub\'s configuration and restart the hub, or use an operator key.',
      };
    case 429:
      return { title: 'Too many requests with this key.', next: 'Wait a few seconds and sign in again.' };
    case 0:
      return { title: 'The hub does not answer.', next: 'Is it running? This page must be served by the hub itself.' };
    default:
      return { title: `The hub answered ${err.status} ${err.code}.`, next: 'See the hub\'s log for details.' };
  }
}

function showLogin(err) {
  stopAll();
  $('app').hidden = true;
  $('signout').hidden = true;
  $('ready').hidden = true;
  $('whoami').textContent = '';
  $('login').hidden = false;
  const box = $('login-error');
  if (err) {
    const p = signInProblem(err);
    box.replaceChildren(el('strong', {}, p.title), el('div', {}, p.next), el('div', { class: 'detail' }, `${err.code}: ${err.message}`));
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  $('key').focus();
}

async function signIn(key) {
  operatorKey = key;
  const button = $('login-form').querySelector('button');
  button.disabled = true;
  try {
    const info = await api('/api/v1/info');
    sessionStorage.setItem(KEY_STORAGE, key);
    $('login').hidden = true;
    $('app').hidden = false;
    $('signout').hidden = false;
    $('whoami').textContent = `key …${key.slice(-4)}`;
    renderNodes(info);
    startRefresh();
  } catch (err) {
    sessionStorage.removeItem(KEY_STORAGE);
    operatorKey = null;
    showLogin(err);
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  operatorKey = null;
  $('key').value = '';
  showLogin(null);
}

// ---- periodic refresh: nodes, readiness, topics, presence, sinks -------------

let refreshTimer = null;

function startRefresh() {
  clearInterval(refreshTimer);
  refresh();
  refreshTimer = setInterval(refresh, REFRESH_MS);
}

function stopAll() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  tail.stop();
}

/**
 * A 401 while signed in (key removed, hub restarted with another config), or
 * a 403 from an operator-only endpoint: back to the sign-in form, with why.
 */
function lostAccess(err) {
  if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && err.operatorOnly))) {
    sessionStorage.removeItem(KEY_STORAGE);
    showLogin(err);
    return true;
  }
  return false;
}

async function refresh() {
  const jobs = [refreshNodes(), refreshReady(), refreshTopics(), refreshPresence(), refreshSinks(), refreshOutbox()];
  for (const r of await Promise.allSettled(jobs)) {
    if (r.status === 'rejected' && lostAccess(r.reason)) return;
  }
}

/** `HH:MM:SS.mmm`, local time. */
function clock(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function uptime(secs) {
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

async function refreshNodes() {
  try {
    renderNodes(await api('/api/v1/info'));
  } catch (err) {
    err.operatorOnly = true;
    throw err;
  }
}

function renderNodes(info) {
  const rows = info.nodes.map((n) =>
    el('tr', {},
      el('td', { class: 'mono' }, n.name),
      el('td', {}, uptime(n.uptime_secs)),
      el('td', { class: 'num' }, n.connections),
      el('td', { class: 'num' }, n.subscriptions),
      el('td', { class: 'num' }, n.topics)),
  );
  $('nodes').tBodies[0].replaceChildren(...rows);
  $('nodes-updated').textContent = `${info.nodes.length} live · ${clock(Date.now()).slice(0, 8)}`;
}

async function refreshReady() {
  const pill = $('ready');
  pill.hidden = false;
  try {
    const res = await fetch('/readyz');
    const text = (await res.text()).trim();
    pill.className = res.ok ? 'pill ok' : 'pill bad';
    pill.textContent = res.ok ? 'broker ready' : text || `not ready (${res.status})`;
    pill.title = 'GET /readyz of the node that serves this page';
  } catch {
    pill.className = 'pill bad';
    pill.textContent = 'hub unreachable';
  }
}

let selectedTopic = null;

async function refreshTopics() {
  const prefix = $('filter').value.trim();
  const q = new URLSearchParams({ limit: '200' });
  if (prefix) q.set('prefix', prefix);
  const { topics, truncated } = await api(`/api/v1/topics?${q}`);
  const rows = topics.map((t) => {
    const tr = el('tr', { class: t.topic === selectedTopic ? 'selected' : '', 'data-topic': t.topic },
      el('td', { class: 'mono' }, t.topic),
      el('td', { class: 'num' }, t.subscribers),
      el('td', { class: 'num' }, t.position.offset),
      el('td', { class: 'mono muted' }, t.position.epoch));
    tr.addEventListener('click', () => chooseTopic(t.topic));
    return tr;
  });
  $('topics').tBodies[0].replaceChildren(...rows);
  $('topics-empty').hidden = topics.length > 0;
  $('topics-empty').textContent = prefix ? `No topic starting with "${prefix}" has a subscriber right now.` : 'No topic has a subscriber right now.';
  $('topics-count').textContent = `${topics.length}${truncated ? '+' : ''} shown`;
}

function chooseTopic(topic) {
  $('tail-topic').value = topic;
  $('pub-topic').value = topic;
  tail.start(topic);
}

async function refreshPresence() {
  const topic = tail.topic;
  const card = $('presence-card');
  if (!topic) {
    card.hidden = true;
    return;
  }
  card.hidden = false;
  const note = $('presence-note');
  try {
    const { members } = await api(`/api/v1/topics/${encodeURIComponent(topic)}/presence`);
    if (topic !== tail.topic) return;
    $('presence').replaceChildren(...members.map((m) =>
      el('li', {},
        el('span', { class: 'user' }, m.user),
        m.user === tail.sub ? el('span', { class: 'tag' }, 'this console') : '',
        el('span', { class: 'muted small mono' }, m.client_id),
        m.info == null ? '' : el('span', { class: 'info', title: JSON.stringify(m.info) }, JSON.stringify(m.info)))));
    $('presence-count').textContent = `${members.length} on ${topic}`;
    note.hidden = true;
  } catch (err) {
    if (err.status === 401) throw err;
    $('presence').replaceChildren();
    $('presence-count').textContent = topic;
    note.textContent = err.code === 'bad_request' ? `Presence is off for this namespace (${err.message}).` : `${err.code}: ${err.message}`;
    note.hidden = false;
  }
}

// ---- webhook sinks and outbox: shown only when this hub's API has them -------

let selectedSink = null;

async function refreshSinks() {
  let body;
  try {
    body = await api('/api/v1/webhooks');
  } catch (err) {
    if (err.status === 401) throw err;
    $('sinks-card').hidden = true; // this hub has no webhook endpoints
    return;
  }
  if (!body || !Array.isArray(body.sinks)) {
    $('sinks-card').hidden = true;
    return;
  }
  $('sinks-card').hidden = false;
  const rows = body.sinks.map((s) => {
    const tr = el('tr', { class: s.name === selectedSink ? 'selected' : '' },
      el('td', { class: 'mono' }, s.name),
      el('td', { class: 'num' }, s.pending),
      el('td', { class: 'num' }, s.retried),
      el('td', { class: 'num' }, s.dead),
      el('td', {}, s.oldest_pending_age_ms == null ? '–' : uptime(Math.round(s.oldest_pending_age_ms / 1000))),
      el('td', { class: 'mono small wrap' }, s.last_error ?? ''));
    tr.addEventListener('click', () => {
      selectedSink = s.name;
      refreshDead();
    });
    return tr;
  });
  $('sinks').tBodies[0].replaceChildren(...rows);
  $('sinks').classList.add('clickable');
  if (!selectedSink) {
    const firstDead = body.sinks.find((s) => s.dead > 0);
    if (firstDead) selectedSink = firstDead.name;
  }
  if (selectedSink) await refreshDead();
}

async function refreshDead() {
  const name = selectedSink;
  const { dead } = await api(`/api/v1/webhooks/${encodeURIComponent(name)}/dead?limit=50`);
  if (name !== selectedSink) return;
  $('dead-panel').hidden = false;
  $('dead-title').textContent = `Dead letters of ${name} (${dead.length})`;
  $('dead-replay-all').disabled = dead.length === 0;
  $('dead').tBodies[0].replaceChildren(...dead.map((d) =>
    el('tr', { 'data-webhook-id': d.webhook_id },
      el('td', { class: 'mono' }, d.topic),
      el('td', { class: 'num' }, d.offset),
      el('td', {}, d.event),
      el('td', { class: 'num' }, d.attempts),
      el('td', { class: 'mono small wrap' }, d.last_status && !(d.last_error ?? '').includes(String(d.last_status)) ? `${d.last_status} ${d.last_error ?? ''}` : d.last_error ?? ''),
      el('td', {},
        el('button', { class: 'link', type: 'button', onclick: () => deadAction('replay', [d.webhook_id]) }, 'Replay'),
        el('button', { class: 'link danger', type: 'button', onclick: () => deadAction('delete', [d.webhook_id]) }, 'Delete')))));
}

async function deadAction(action, ids) {
  const name = selectedSink;
  const out = $('dead-result');
  try {
    const path = `/api/v1/webhooks/${encodeURIComponent(name)}/dead${action === 'replay' ? '/replay' : ''}`;
    const body = ids ? { webhook_ids: ids } : {};
    const res = await api(path, { method: action === 'replay' ? 'POST' : 'DELETE', body });
    out.className = 'small ok';
    out.textContent = action === 'replay' ? `Replayed ${res.replayed}: queued again for ${name}.` : `Deleted ${res.deleted}.`;
  } catch (err) {
    out.className = 'small bad';
    out.textContent = `${err.code}: ${err.message}`;
  }
  await refreshSinks().catch(() => {});
}

/** A duration in ms, short: 850 ms, 4.2 s, 3m 20s. */
function millis(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return uptime(Math.round(ms / 1000));
}

function stat(label, value, bad = false) {
  return el('div', { class: 'stat' }, el('div', { class: 'label' }, label), el('div', { class: bad ? 'value bad' : 'value' }, value));
}

/** GET /api/v1/outbox: this node's consumer, or `{configured: false}`. */
async function refreshOutbox() {
  let body;
  try {
    body = await api('/api/v1/outbox');
  } catch (err) {
    if (err.status === 401) throw err;
    $('outbox-card').hidden = true; // an older hub without the endpoint
    return;
  }
  const card = $('outbox-card');
  card.hidden = false;
  const role = $('outbox-role');
  if (!body || body.configured !== true) {
    card.dataset.configured = 'false';
    role.textContent = 'not configured';
    role.className = 'pill muted';
    $('outbox-off').hidden = false;
    $('outbox-standby').hidden = true;
    $('outbox-stats').hidden = true;
    $('outbox-error').hidden = true;
    return;
  }
  card.dataset.configured = 'true';
  card.dataset.role = body.role;
  card.dataset.lagMs = String(body.lag_ms);
  card.dataset.published = String(body.published);
  $('outbox-off').hidden = true;
  if (!body.up) {
    role.textContent = 'PostgreSQL unreachable';
    role.className = 'pill bad';
  } else if (body.role === 'leader') {
    role.textContent = 'leader: publishing';
    role.className = 'pill ok';
  } else {
    role.textContent = 'standby';
    role.className = 'pill muted';
  }
  $('outbox-standby').hidden = !(body.up && body.role === 'standby');
  const pending = body.pending_rows == null ? '–' : `${body.pending_rows}${body.pending_rows_at_least ? '+' : ''}`;
  $('outbox-stats').hidden = false;
  $('outbox-stats').replaceChildren(
    stat(`Lag (${body.table})`, millis(body.lag_ms), body.lag_ms >= 10_000),
    stat('Pending rows', pending),
    stat('Last read', body.last_read_ago_ms == null ? 'never' : `${millis(body.last_read_ago_ms)} ago`, !body.up),
    stat('Published', body.published),
    stat('Dead', body.dead, body.dead > 0),
    stat('Batches', body.batches));
  const error = $('outbox-error');
  error.hidden = !body.last_error;
  if (body.last_error) {
    // Kept after recovery: say how long ago, and dim it once the table reads again.
    error.textContent = `Last error, ${millis(body.last_error_ago_ms ?? 0)} ago: ${body.last_error}`;
    error.className = body.up && body.last_error_ago_ms > (body.last_read_ago_ms ?? 0) ? 'small mono old' : 'small mono';
  }
}

// ---- live tail ----------------------------------------------------------------

/**
 * The tail of one topic: its recent history first (REST), then a live /sse
 * stream from that position with a subscribe-only token. The stream resumes
 * from the last offset shown whenever it drops (token expiry, node restart),
 * so nothing is skipped; a gap the hub cannot fill is shown as a marker row.
 * When this hub cannot mint tokens, it polls history instead.
 */
const tail = {
  topic: null,
  sub: null,
  position: null,
  source: null,
  timer: null,
  generation: 0,
  paused: false,
  buffered: [],

  stop() {
    this.generation += 1;
    this.source?.close();
    this.source = null;
    clearTimeout(this.timer);
    this.timer = null;
    this.topic = null;
  },

  async start(topic) {
    this.stop();
    const gen = this.generation;
    this.topic = topic;
    this.position = null;
    this.buffered = [];
    this.setPaused(false);
    $('pause').disabled = false;
    $('tail').tBodies[0].replaceChildren();
    $('tail-empty').hidden = true;
    $('tail-note').hidden = true;
    highlightTopic(topic);
    this.status('loading history…', '');
    try {
      const h = await api(`/api/v1/topics/${encodeURIComponent(topic)}/history?limit=${HISTORY_ROWS}`);
      if (gen !== this.generation) return;
      for (const p of h.publications) this.show(p, 'history');
      this.position = h.position;
      if (h.publications.length === 0) $('tail-empty').hidden = false;
      $('tail-empty').textContent = `No publication in ${topic}'s history yet; new ones appear here as they arrive.`;
    } catch (err) {
      if (gen !== this.generation) return;
      if (lostAccess(err)) return;
      this.status('stopped', 'bad');
      this.note(`Cannot tail ${topic}`, `${err.code}: ${err.message}`);
      $('pause').disabled = true;
      return;
    }
    refreshPresence().catch(() => {});
    this.open(gen, 0);
  },

  async open(gen, attempt) {
    let token;
    try {
      token = await api('/api/v1/tokens/subscribe', { method: 'POST', body: { topics: [this.topic], ttl_secs: 300 } });
    } catch (err) {
      if (gen !== this.generation) return;
      if (lostAccess(err)) return;
      if (err.status === 400) {
        this.note('Polling history: this hub cannot mint a subscribe token.', err.message, 'warn');
        this.poll(gen);
        return;
      }
      return this.retry(gen, attempt, err.message);
    }
    if (gen !== this.generation) return;
    this.sub = token.sub;
    const { epoch, offset } = this.position;
    const q = new URLSearchParams({ topic: this.topic, token: token.token, since: `${this.topic}|${epoch}|${offset}` });
    const source = new EventSource(`/sse?${q}`);
    this.source = source;
    source.addEventListener('subscribed', (e) => {
      if (gen !== this.generation) return;
      const frame = JSON.parse(e.data);
      if (frame.recovered === false) {
        this.marker(`The hub could not recover every publication after offset ${this.position.offset} (history trimmed or epoch changed): some are not shown.`);
      }
      for (const p of frame.publications ?? []) this.accept(p);
      this.position = frame.position.epoch === this.position.epoch && frame.position.offset < this.position.offset ? this.position : frame.position;
      this.status('live', 'live');
      attempt = 0;
    });
    source.addEventListener('pub', (e) => {
      if (gen !== this.generation) return;
      this.accept(JSON.parse(e.data));
    });
    source.addEventListener('disconnect', () => {
      source.close();
      if (gen === this.generation) this.retry(gen, 0, 'the hub ended the stream');
    });
    source.addEventListener('error', () => {
      // EventSource would retry with the same (possibly expired) token: resume
      // with a fresh one from the last offset shown instead.
      source.close();
      if (gen === this.generation) this.retry(gen, attempt + 1, 'stream interrupted');
    });
  },

  retry(gen, attempt, why) {
    this.status(`reconnecting (${why})`, 'bad');
    const delay = Math.min(500 * 2 ** attempt, 10_000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => gen === this.generation && this.open(gen, attempt), delay);
  },

  async poll(gen) {
    if (gen !== this.generation) return;
    this.status('polling', 'live');
    try {
      const { epoch, offset } = this.position;
      const h = await api(`/api/v1/topics/${encodeURIComponent(this.topic)}/history?since=${encodeURIComponent(`${epoch}:${offset}`)}&limit=1000`);
      if (gen !== this.generation) return;
      if (h.position.epoch !== epoch) this.marker('The topic\'s history was lost (epoch changed): publications in between are not shown.');
      for (const p of h.publications) this.accept(p);
      this.position = h.position;
    } catch (err) {
      if (lostAccess(err)) return;
      this.status(`polling failed: ${err.message}`, 'bad');
    }
    this.timer = setTimeout(() => this.poll(gen), REFRESH_MS);
  },

  /** A live publication: shown once, in offset order. */
  accept(p) {
    if (this.position && p.offset <= this.position.offset) return;
    if (this.position && p.offset > this.position.offset + 1) {
      this.marker(`Offsets ${this.position.offset + 1}–${p.offset - 1} were not received.`);
    }
    if (this.position) this.position = { epoch: this.position.epoch, offset: p.offset };
    this.show(p, 'live');
  },

  show(p, kind) {
    const row = el('tr', { class: kind === 'history' ? 'history' : 'fresh', 'data-offset': p.offset },
      el('td', { class: 'num mono' }, p.offset),
      el('td', { class: 'small time', title: new Date(p.ts).toISOString() }, clock(p.ts)),
      el('td', {}, p.event, kind === 'history' ? el('span', { class: 'tag' }, 'history') : ''),
      el('td', { class: 'data', title: JSON.stringify(p.data, null, 2) }, JSON.stringify(p.data)));
    this.insert(row);
  },

  marker(text) {
    this.insert(el('tr', { class: 'marker' }, el('td', { colspan: 4 }, text)));
  },

  insert(row) {
    $('tail-empty').hidden = true;
    if (this.paused) {
      this.buffered.push(row);
      $('pause').textContent = `Resume (${this.buffered.length} new)`;
      return;
    }
    const body = $('tail').tBodies[0];
    body.prepend(row);
    while (body.rows.length > TAIL_ROWS) body.lastElementChild.remove();
  },

  setPaused(paused) {
    this.paused = paused;
    const button = $('pause');
    button.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) {
      const rows = this.buffered;
      this.buffered = [];
      for (const r of rows) this.insert(r);
    }
    if (this.source || this.timer) this.status(paused ? 'paused' : 'live', paused ? 'paused' : 'live');
  },

  status(text, kind) {
    const s = $('tail-status');
    s.textContent = this.paused && kind === 'live' ? 'paused' : text;
    s.className = `pill ${this.paused && kind === 'live' ? 'paused' : kind}`;
  },

  note(title, detail, kind = '') {
    const n = $('tail-note');
    n.className = `alert ${kind}`;
    n.replaceChildren(el('strong', {}, title), el('div', { class: 'detail' }, detail));
    n.hidden = false;
  },
};

function highlightTopic(topic) {
  selectedTopic = topic;
  for (const tr of $('topics').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.topic === topic);
}

// ---- publish form ---------------------------------------------------------------

function parseData() {
  const text = $('pub-data').value.trim();
  const box = $('data-error');
  if (text === '') {
    box.hidden = true;
    $('pub-data').classList.remove('invalid');
    return { ok: true, value: null };
  }
  try {
    const value = JSON.parse(text);
    box.hidden = true;
    $('pub-data').classList.remove('invalid');
    $('publish').disabled = false;
    return { ok: true, value };
  } catch (err) {
    box.textContent = `Not valid JSON: ${err.message}`;
    box.hidden = false;
    $('pub-data').classList.add('invalid');
    $('publish').disabled = true;
    return { ok: false };
  }
}

async function publish(event) {
  event.preventDefault();
  const data = parseData();
  if (!data.ok) return;
  const out = $('publish-result');
  const topic = $('pub-topic').value.trim();
  out.className = 'small';
  out.textContent = 'publishing…';
  try {
    const { position } = await api('/api/v1/publish', {
      method: 'POST',
      body: { topic, event: $('pub-event').value.trim(), data: data.value },
    });
    out.className = 'small ok';
    out.textContent = `Published to ${topic} at offset ${position.offset}.`;
  } catch (err) {
    if (lostAccess(err)) return;
    out.className = 'small bad';
    out.textContent = err.status === 403
      ? `Refused: ${err.message}. This key's publish patterns do not cover ${topic}.`
      : `Refused (${err.code}): ${err.message}`;
  }
}

// ---- wiring -----------------------------------------------------------------------

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const key = $('key').value.trim();
  if (key) signIn(key);
});
$('signout').addEventListener('click', signOut);
$('filter').addEventListener('input', () => refreshTopics().catch(lostAccess));
$('tail-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const topic = $('tail-topic').value.trim();
  if (topic) chooseTopic(topic);
});
$('pause').addEventListener('click', () => tail.setPaused(!tail.paused));
$('pub-data').addEventListener('input', parseData);
$('publish-form').addEventListener('submit', publish);
$('dead-replay-all').addEventListener('click', () => deadAction('replay', null));

if (operatorKey) signIn(operatorKey);
else showLogin(null);
