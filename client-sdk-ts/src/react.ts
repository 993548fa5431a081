/**
 * React bindings (`@hubbub/client/react`): `HubbubProvider` hands a client to
 * the components below it (`useHubbub`), `useSyncedState` keeps a state in
 * step with a topic (load, then every publication, reloaded when some were
 * lost), `useTopic` subscribes while a component is mounted, and
 * `useConnectionState` follows the client's state. React is an optional peer
 * dependency of the package; only this entry point imports it.
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import type { ConnectionState, Hubbub } from './client.js';
import type { HubbubError } from './errors.js';
import type { AppEvent, EventMap, SubscriptionEvents, SubscriptionState } from './subscription.js';
import type { SyncedPublication, SyncStatus } from './sync.js';
import type { Position, Publication } from './wire.js';

const HubbubContext = createContext<Hubbub | null>(null);

/** Makes `client` the one `useHubbub()`, `useSyncedState()` and friends use below it. */
export function HubbubProvider(props: { client: Hubbub; children?: ReactNode }): ReactNode {
  return createElement(HubbubContext.Provider, { value: props.client }, props.children);
}

/** The client of the nearest `HubbubProvider`. */
export function useHubbub(): Hubbub {
  const client = useContext(HubbubContext);
  if (!client) throw new Error('useHubbub() needs a <HubbubProvider client={…}> above this component');
  return client;
}

export interface SyncedState<S> {
  /** The loaded state plus every publication since (undefined until the first load). */
  state: S | undefined;
  status: SyncStatus | 'idle';
  position: Position | undefined;
  /** The last problem (a failed load is retried by itself; `failed` status is final). */
  error: HubbubError | undefined;
}

/**
 * A state kept in step with `topic` by the provider's client (`Hubbub.sync`):
 * `load()` gives the state at the topic's position, `apply()` each publication
 * after it, in order; lost publications load it again. `load` and `apply` may
 * change on every render without starting over; a new topic starts over.
 */
export function useSyncedState<E extends EventMap, S>(
  topic: string | null | undefined,
  options: { load: (at: Position) => Promise<S> | S; apply: (state: S, pub: SyncedPublication<E>) => S },
): SyncedState<S> {
  const client = useHubbub();
  const latest = useRef(options);
  latest.current = options;
  const [snapshot, setSnapshot] = useState<SyncedState<S>>({
    state: undefined,
    status: 'idle',
    position: undefined,
    error: undefined,
  });

  useEffect(() => {
    if (!topic) {
      setSnapshot({ state: undefined, status: 'idle', position: undefined, error: undefined });
      return undefined;
    }
    const synced = client.sync<E, S>(topic, {
      load: (at) => latest.current.load(at),
      apply: (state, pub) => latest.current.apply(state, pub),
    });
    let error: HubbubError | undefined;
    const update = (): void =>
      setSnapshot({ state: synced.state, status: synced.status, position: synced.position, error });
    const offs = [
      synced.on('change', update),
      synced.on('status', update),
      synced.on('error', (err) => {
        error = err;
        update();
      }),
    ];
    update();
    return () => {
      for (const off of offs) off();
      synced.close();
    };
  }, [client, topic]);

  return snapshot;
}

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

/** The client's (default: the provider's) connection state, re-rendering on every change. */
export function useConnectionState(client?: Hubbub): ConnectionState {
  const provided = useContext(HubbubContext);
  const c = client ?? provided;
  if (!c) throw new Error('useConnectionState() needs a client or a <HubbubProvider client={…}> above');
  return useSyncExternalStore(
    (onChange) => c.on('state', onChange),
    () => c.state,
    () => c.state,
  );
}
