// @vitest-environment happy-dom
import { act, createElement, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useConnectionState, useTopic } from '../../src/react.js';
import { connected, settle } from '../support/fake-socket.js';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

type Events = { 'booking.created': { id: number } };

describe('useTopic', () => {
  it('subscribes while mounted, calls the latest handlers, follows state, and unsubscribes on unmount', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    const seen: string[] = [];
    const renders: Array<{ state: string; conn: string }> = [];
    let setLabel: (s: string) => void = () => {};

    function Board() {
      const [label, set] = useState('first');
      setLabel = set;
      const { state } = useTopic<Events>(client, 'bookings:1', {
        'booking.created': (data) => seen.push(`${label}:${data.id}`),
        reset: () => seen.push('reset'),
      });
      const conn = useConnectionState(client);
      renders.push({ state, conn });
      return createElement('p', null, `${state}/${conn}`);
    }

    const el = document.createElement('div');
    const root = createRoot(el);
    await act(async () => root.render(createElement(Board)));
    await act(async () => settle());
    const sub = ws.lastOf('subscribe');
    expect(sub).toMatchObject({ topic: 'bookings:1' });
    await act(async () => {
      ws.reply(sub, { type: 'subscribed', topic: 'bookings:1', position: { epoch: 'e', offset: 0 }, publications: [] });
      await settle();
    });
    expect(el.textContent).toBe('subscribed/connected');

    await act(async () => ws.push({ type: 'pub', topic: 'bookings:1', offset: 1, event: 'booking.created', data: { id: 1 }, ts: 1, id: 'a' }));
    await act(async () => setLabel('second'));
    await act(async () => ws.push({ type: 'pub', topic: 'bookings:1', offset: 2, event: 'booking.created', data: { id: 2 }, ts: 1, id: 'b' }));
    expect(seen).toEqual(['first:1', 'second:2']);
    expect(ws.allOf('subscribe')).toHaveLength(1); // new handlers did not resubscribe

    await act(async () => ws.serverClose(1006));
    expect(el.textContent).toBe('subscribing/disconnected');

    await act(async () => root.unmount());
    expect(client.getSubscription('bookings:1')).toBeUndefined();
    expect(renders.length).toBeGreaterThan(2);
  });
});
