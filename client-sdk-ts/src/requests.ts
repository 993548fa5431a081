/** Commands in flight: an `id` each, a deadline each, settled by the reply with that `id`. */
import { HubbubError } from './errors.js';
import { isReplyTo, type Command, type Replies, type ServerFrame } from './wire.js';

interface Pending {
  /** Settles with the frame that carries this command's id. */
  settle(frame: ServerFrame): void;
  reject(err: HubbubError): void;
  timer: ReturnType<typeof setTimeout>;
}

const MAX_ID = 0xffff_ffff;

export class Requests {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /**
   * Registers a command; the promise settles with its reply, an `error` reply,
   * a timeout, or a `bad_reply` error when the hub answered with another type.
   */
  register<K extends Command['type']>(type: K, timeoutMs: number): { id: number; reply: Promise<Replies[K]> } {
    const id = this.allocate();
    const reply = new Promise<Replies[K]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HubbubError('timeout', `no reply to \`${type}\` within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        settle: (frame) => {
          if (frame.type === 'error') reject(new HubbubError(frame.code || 'internal', frame.message ?? ''));
          else if (isReplyTo(type, frame)) resolve(frame);
          else reject(new HubbubError('internal', `\`${type}\` was answered with \`${frame.type}\``));
        },
        reject,
        timer,
      });
    });
    return { id, reply };
  }

  /** Settles the command a reply answers; false when the frame answers nothing pending. */
  settle(frame: ServerFrame): boolean {
    // A `pub` carries a publication id, not a command id.
    if (frame.type === 'pub' || !('id' in frame) || typeof frame.id !== 'number') return false;
    const pending = this.pending.get(frame.id);
    if (!pending) return false;
    this.pending.delete(frame.id);
    clearTimeout(pending.timer);
    pending.settle(frame);
    return true;
  }

  /** Fails every command in flight (the connection they were sent on is gone). */
  rejectAll(err: HubbubError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  get size(): number {
    return this.pending.size;
  }

  private allocate(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId >= MAX_ID ? 1 : this.nextId + 1;
      if (!this.pending.has(id)) return id;
    }
  }
}
