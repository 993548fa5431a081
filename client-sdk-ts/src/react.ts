/**
 * React bindings (`@hubbub/client/react`): `useTopic` subscribes while a
 * component is mounted, `useConnectionState` follows the client's state.
 * React is an optional peer dependency of the package; only this entry point imports it.
 */
import { useEffect, useRef, useState, useSyncExternalStore } from 'react';
import type { ConnectionState, Hubbub } from './client.js';
import type { AppEvent, EventMap, SubscriptionEvents, SubscriptionState } from './subscription.js';
import type { Position, Publication } from './wire.js';

/** Handlers by event name: the topic's app events (typed by `E`) and lifecycle events. */
export type TopicHandlers<E extends EventMap> = {
  [K in AppEvent<E>]?: (data: E[K], pub: Publication<E[K]>) => void;
} & Partial<Pick<SubscriptionEvents, 'publication' | 'reset' | 'subscribed' | 'join' | 'leave' | 'error'>>;

export interface TopicState {
  state: SubscriptionState | 'idle';
  position: Position | undefined;
}

/**
 * Subscribes `client` to `topic` while the component is mounted (no topic: no
 * subscription). Handlers may change on every render without resubscribing.
 */
export function useTopic<E extends EventMap = EventMap>(
  client: Hubbub,
  topic: string | null | undefined,
  handlers: TopicHandlers<E> = {},
): TopicState {
  const latest = useRef(handlers);
  latest.current = handlers;
  const [state, setState] = useState<TopicState>({ state: 'idle', position: undefined });

  useEffect(() => {
    if (!topic) {
      setState({ state: 'idle', position: undefined });
      return undefined;
    }
    const sub = client.subscribe<EventMap>(topic);
    const sync = (): void => setState({ state: sub.state, position: sub.position });
    const call = (name: string, ...args: unknown[]): void => {
      const fn = (latest.current as Record<string, ((...a: unknown[]) => void) | undefined>)[name];
      fn?.(...args);
    };
    const offs = [
      sub.on('state', sync),
      sub.on('publication', (pub) => {
        call('publication', pub);
        call(pub.event, pub.data, pub);
      }),
      sub.on('reset', (info) => call('reset', info)),
      sub.on('subscribed', (info) => {
        sync();
        call('subscribed', info);
      }),
      sub.on('join', (m) => call('join', m)),
      sub.on('leave', (m) => call('leave', m)),
      sub.on('error', (err) => call('error', err)),
    ];
    sync();
    return () => {
      for (const off of offs) off();
      sub.unsubscribe();
    };
  }, [client, topic]);

  return state;
}

/** The client's connection state, re-rendering on every change. */
export function useConnectionState(client: Hubbub): ConnectionState {
  return useSyncExternalStore(
    (onChange) => client.on('state', onChange),
    () => client.state,
    () => client.state,
  );
}
