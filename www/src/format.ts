// Numbers and token text as the page shows them.

const nf = new Intl.NumberFormat('en-US');

export const formatInt = (n: number): string => nf.format(n);

export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

export function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function formatProb(p: number): string {
  const pct = p * 100;
  if (pct >= 10) return `${pct.toFixed(1)}%`;
  if (pct >= 0.1) return `${pct.toFixed(2)}%`;
  return `${pct.toExponential(1)}%`;
}

/** A metric with enough digits to see small changes: 0.0123, 1.23e-5, 12.3. */
export function formatMetric(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a < 1e-3) return v.toExponential(2);
  if (a < 1) return v.toFixed(4);
  if (a < 100) return v.toFixed(3);
  return v.toFixed(1);
}

/** The part of a URL or path after the last slash. */
export const baseName = (s: string): string => decodeURIComponent(s.split(/[\\/]/).pop() || s);

/**
 * Token text split into runs of plain text and visible marks for whitespace and control
 * characters: a space is "␣", a newline "↵", a tab "→", other controls \xNN; the empty token is "∅".
 */
export function tokenParts(text: string): { text: string; mark: boolean }[] {
  if (text.length === 0) return [{ text: '∅', mark: true }];
  const parts: { text: string; mark: boolean }[] = [];
  let run = '';
  const flush = () => {
    if (run) parts.push({ text: run, mark: false });
    run = '';
  };
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    let shown: string | null = null;
    if (ch === ' ') shown = '␣';
    else if (ch === '\n') shown = '↵';
    else if (ch === '\t') shown = '→';
    else if (ch === '\r') shown = '␍';
    else if (code < 0x20 || code === 0x7f) shown = `\\x${code.toString(16).padStart(2, '0')}`;
    if (shown === null) run += ch;
    else {
      flush();
      parts.push({ text: shown, mark: true });
    }
  }
  flush();
  return parts;
}

/** tokenParts as DOM: marks get class "ws" so they read as marks, not as text. */
export function tokenNode(text: string): HTMLSpanElement {
  const span = document.createElement('span');
  span.className = 'token-text';
  for (const part of tokenParts(text)) {
    if (part.mark) {
      const m = document.createElement('span');
      m.className = 'ws';
      m.textContent = part.text;
      span.append(m);
    } else {
      span.append(part.text);
    }
  }
  return span;
}
