// Runs an async task so that at most one run is in flight and the latest request always wins:
// requests that arrive during a run collapse into one more run after it, instead of queueing.

export class LatestRunner {
  private loop: Promise<void> | null = null;
  private wanted = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError: (e: unknown) => void = (e) => console.error(e),
  ) {}

  /** Asks for a run; resolves once a run that started after this call has finished. */
  request(): Promise<void> {
    this.wanted = true;
    if (!this.loop) this.loop = this.drain().finally(() => (this.loop = null));
    return this.loop;
  }

  /** A newer request is waiting: the running task may stop early, its result is moot. */
  get superseded(): boolean {
    return this.wanted;
  }

  get running(): boolean {
    return this.loop !== null;
  }

  private async drain(): Promise<void> {
    while (this.wanted) {
      this.wanted = false;
      try {
        await this.task();
      } catch (e) {
        this.onError(e);
      }
    }
  }
}
