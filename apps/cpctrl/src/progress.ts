const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A one-line progress display on stderr, only when stderr is a terminal (never in pipes, CI or
 * -o json output, so scripts see clean output).
 */
export class Progress {
  #timer: NodeJS.Timeout | undefined;
  #text = '';
  #frame = 0;
  readonly #enabled: boolean;
  readonly #started = Date.now();

  constructor(enabled = process.stderr.isTTY === true) {
    this.#enabled = enabled;
    if (enabled) this.#timer = setInterval(() => this.#draw(), 80);
  }

  update(text: string): void {
    this.#text = text;
    if (this.#enabled) this.#draw();
  }

  #draw(): void {
    const secs = ((Date.now() - this.#started) / 1000).toFixed(1);
    const frame = FRAMES[this.#frame++ % FRAMES.length];
    process.stderr.write(`\r\x1b[2K${frame} ${this.#text} (${secs}s)`);
  }

  done(text?: string): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#enabled) process.stderr.write(`\r\x1b[2K${text ? `${text}\n` : ''}`);
  }
}
