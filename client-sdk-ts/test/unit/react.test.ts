// @vitest-environment happy-dom
import { act, createElement, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HubbubProvider, useConnectionState, useSyncedState, useTopic } from '../../src/react.js';
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

describe('useSyncedState', () => {
  it('shows the loaded guest list plus what was published, from the provider\'s client, and closes on unmount', async () => {
    const { client, ws } = await connected({}, { ping_interval: 0 });
    type Guests = { 'guest.added': { name: string } };
    let release: (names: string[]) => void = () => {};
    function GuestList() {
      const conn = useConnectionState();
      const { state, status } = useSyncedState<Guests, string[]>('guests:w', {
        load: () => new Promise<string[]>((r) => (release = r)),
        apply: (names, pub) => [...names, pub.data.name],
      });
      return createElement('p', null, `${conn}/${status}:${(state ?? []).join(',')}`);
    }
    const el = document.createElement('div');
    const root = createRoot(el);
    await act(async () => root.render(createElement(HubbubProvider, { client }, createElement(GuestList))));
    await act(async () => settle());
    expect(el.textContent).toBe('connected/loading:');
    await act(async () => {
      ws.reply(ws.lastOf('history'), { type: 'history', publications: [], position: { epoch: 'e', offset: 3 } });
      await settle();
    });
    await act(async () => {
      ws.reply(ws.lastOf('subscribe'), { type: 'subscribed', topic: 'guests:w', position: { epoch: 'e', offset: 4 }, recovered: true, publications: [{ topic: 'guests:w', offset: 4, event: 'guest.added', data: { name: 'dan' }, ts: 1, id: 'd' }] });
      await settle();
    });
    await act(async () => {
      release(['ann', 'bob', 'cy']);
      await settle();
    });
    expect(el.textContent).toBe('connected/live:ann,bob,cy,dan');
    await act(async () => ws.push({ type: 'pub', topic: 'guests:w', offset: 5, event: 'guest.added', data: { name: 'eve' }, ts: 1, id: 'e' }));
    expect(el.textContent).toBe('connected/live:ann,bob,cy,dan,eve');
    await act(async () => root.unmount());
    await settle();
    expect(ws.lastOf('unsubscribe')).toMatchObject({ topic: 'guests:w' });
  });

  it('needs a provider', () => {
    function Lost() {
      useSyncedState('guests:x', { load: () => [], apply: (s) => s });
      return null;
    }
    const root = createRoot(document.createElement('div'));
    const spy = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(() => act(() => root.render(createElement(Lost)))).toThrow(/HubbubProvider/);
    spy.mockRestore();
  });
});
