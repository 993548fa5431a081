/**
 * Liveness: after `idleMs` without any frame, probe (send `ping`); when no
 * frame at all arrives within `timeoutMs` after the probe, the connection is dead.
 */
export class Liveness {
  private lastFrameAt = 0;
  private probeAt: number | undefined;
  private heardSinceProbe = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private idleMs = 0;
  private timeoutMs = 0;

  constructor(
    private readonly probe: () => void,
    private readonly dead: () => void,
  ) {}

  /** Starts watching; `idleMs` of 0 or less disables the idle probe (a dead check still runs after `probeNow`). */
  start(idleMs: number, timeoutMs: number): void {
    this.stop();
    this.idleMs = idleMs;
    this.timeoutMs = timeoutMs;
    this.lastFrameAt = Date.now();
    if (idleMs > 0) this.schedule(idleMs);
  }

  /** Something arrived. Cheap: timers are not touched on every frame. */
  touch(): void {
    this.lastFrameAt = Date.now();
    this.heardSinceProbe = true;
  }

  /** Probes now (the network just came back, the page became visible…). */
  probeNow(): void {
    if (this.timeoutMs <= 0 || this.probeAt !== undefined) return;
    this.sendProbe();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.probeAt = undefined;
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), Math.max(0, ms));
  }

  private sendProbe(): void {
    if (this.timeoutMs <= 0) {
      // Nothing to probe with (SSE): silence itself is the verdict.
      this.stop();
      this.dead();
      return;
    }
    this.probeAt = Date.now();
    this.heardSinceProbe = false;
    this.schedule(this.timeoutMs);
    this.probe();
  }

  private tick(): void {
    this.timer = undefined;
    const now = Date.now();
    if (this.probeAt !== undefined) {
      if (this.heardSinceProbe) {
        this.probeAt = undefined; // answered: back to idle watching
      } else if (now - this.probeAt >= this.timeoutMs) {
        this.stop();
        this.dead();
        return;
      } else {
        this.schedule(this.probeAt + this.timeoutMs - now);
        return;
      }
    }
    if (this.idleMs <= 0) return;
    const idle = now - this.lastFrameAt;
    if (idle >= this.idleMs) this.sendProbe();
    else this.schedule(this.idleMs - idle);
  }
}
