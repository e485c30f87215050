// The page's handle on one worker: typed calls (messages.ts) that resolve with the result or
// reject with the engine's error message, streamed progress and tokens, and crash handling.
//
// One engine = one worker = one model. Loading a file starts a *new* engine; only once it has
// loaded does it replace the current one, so a bad file (or a crash while loading it) leaves the
// model that was already there working.

import {
  callRequest,
  isWorkerMessage,
  type ArgsOf,
  type Capabilities,
  type Method,
  type ResultOf,
  type SensitivityCell,
  type WorkerMessage,
} from './messages';

export interface CallEvents {
  onProgress?: (stage: string, done: number, total: number) => void;
  onToken?: (piece: string, count: number) => void;
  onCell?: (cell: SensitivityCell) => void;
}

interface Pending {
  method: Method;
  resolve: (value: never) => void;
  reject: (error: Error) => void;
  events: CallEvents;
}

export class Engine {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** The reason, once the worker has crashed or was replaced. */
  dead: string | null = null;
  capabilities: Capabilities | null = null;
  readonly ready: Promise<Capabilities>;
  onCrash: ((reason: string) => void) | null = null;
  /** The model's GPU device was lost: this engine must be replaced to compute on a GPU again. */
  onDeviceLost: ((reason: string) => void) | null = null;

  constructor() {
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
    let resolveReady!: (c: Capabilities) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.worker.onmessage = (event: MessageEvent<unknown>) => {
      if (!isWorkerMessage(event.data)) {
        console.error('quantscope: unexpected message from the engine', event.data);
        return;
      }
      if (event.data.type === 'ready') {
        this.capabilities = event.data.capabilities;
        resolveReady(event.data.capabilities);
        return;
      }
      if (event.data.type === 'deviceLost') {
        this.onDeviceLost?.(event.data.message);
        return;
      }
      this.receive(event.data, rejectReady);
    };
    this.worker.onerror = (event) => {
      // A module worker that fails to import (pkg/ missing, syntax error) lands here.
      event.preventDefault();
      const reason = `the engine could not start: ${event.message || 'worker script failed to load'} (is www/pkg built? run scripts/build-web)`;
      rejectReady(new Error(reason));
      this.die(reason);
    };
  }

  private receive(
    msg: Exclude<WorkerMessage, { type: 'ready' | 'deviceLost' }>,
    rejectReady: (e: Error) => void,
  ): void {
    if (msg.type === 'error' && msg.fatal) {
      rejectReady(new Error(msg.message));
      this.die(msg.message);
      return;
    }
    if (msg.id === null) return;
    const request = this.pending.get(msg.id);
    if (!request) return;
    switch (msg.type) {
      case 'progress':
        request.events.onProgress?.(msg.stage, msg.done, msg.total);
        break;
      case 'token':
        request.events.onToken?.(msg.piece, msg.count);
        break;
      case 'cell':
        request.events.onCell?.(msg.cell);
        break;
      case 'error':
        this.pending.delete(msg.id);
        request.reject(new Error(msg.message));
        break;
      case 'result':
        this.pending.delete(msg.id);
        if (msg.method !== request.method) {
          request.reject(new Error(`the engine answered ${request.method} with a ${msg.method} result`));
        } else {
          request.resolve(msg.result as never);
        }
        break;
    }
  }

  private die(reason: string): void {
    if (this.dead) return;
    this.dead = reason;
    for (const { reject } of this.pending.values()) reject(new Error(reason));
    this.pending.clear();
    this.worker.terminate();
    this.onCrash?.(reason);
  }

  /** Runs `method` in the worker; the id lets `stop` name a running generation or evaluation. */
  call<M extends Method>(
    method: M,
    args: ArgsOf<M>,
    events: CallEvents = {},
  ): { id: number; result: Promise<ResultOf<M>> } {
    const id = this.nextId++;
    if (this.dead) return { id, result: Promise.reject(new Error(this.dead)) };
    const result = new Promise<ResultOf<M>>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (v: never) => void, reject, events });
      this.worker.postMessage(callRequest(id, method, args));
    });
    return { id, result };
  }

  run<M extends Method>(method: M, args: ArgsOf<M>, events: CallEvents = {}): Promise<ResultOf<M>> {
    return this.call(method, args, events).result;
  }

  /** Asks a running generation to stop after its current token, an evaluation before its next window, a sensitivity map before its next cell. */
  stop(target: number): void {
    if (!this.dead) this.worker.postMessage({ type: 'stop', target });
  }

  /** Stops the worker. Calls still in flight are rejected, so nobody waits forever. */
  terminate(reason = 'this engine was replaced'): void {
    this.onCrash = null;
    this.onDeviceLost = null;
    this.die(reason);
  }
}
