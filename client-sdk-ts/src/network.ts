/** Browser `online`/`offline` awareness, behind a small interface tests can fake. */

export interface NetworkMonitor {
  /** False only when the platform is sure there is no network (`navigator.onLine === false`). */
  isOnline(): boolean;
  /** Calls `listener` on every change; returns the unsubscribe function. */
  watch(listener: (online: boolean) => void): () => void;
}

/** A monitor that always says online (Node, workers without `online` events). */
export const alwaysOnline: NetworkMonitor = {
  isOnline: () => true,
  watch: () => () => {},
};

/** The browser's monitor when `window` and `navigator.onLine` exist, else {@link alwaysOnline}. */
export function defaultNetworkMonitor(): NetworkMonitor {
  const g = globalThis as {
    addEventListener?: (type: string, fn: () => void) => void;
    removeEventListener?: (type: string, fn: () => void) => void;
    navigator?: { onLine?: boolean };
  };
  if (typeof g.addEventListener !== 'function' || typeof g.navigator?.onLine !== 'boolean') {
    return alwaysOnline;
  }
  const nav = g.navigator;
  return {
    isOnline: () => nav.onLine !== false,
    watch(listener) {
      const online = (): void => listener(true);
      const offline = (): void => listener(false);
      g.addEventListener?.('online', online);
      g.addEventListener?.('offline', offline);
      return () => {
        g.removeEventListener?.('online', online);
        g.removeEventListener?.('offline', offline);
      };
    },
  };
}
