// Raw TCP requests: what a port scanner, a fuzzer or a broken client sends, byte for byte, which fetch/undici
// would refuse to send.
import net from 'node:net';

export interface RawAnswer {
  /** Status code of the first response line, or undefined when the server closed without an answer. */
  status: number | undefined;
  /** Everything the server sent. */
  text: string;
  /** How the exchange ended: the server closed the connection, or we gave up waiting. */
  ended: 'closed' | 'gave-up';
}

/**
 * Sends `payload` (then half-closes with `halfClose`) and collects the answer until the server closes the
 * connection, or until a full response has arrived and `waitMs` passed without more bytes.
 */
export function rawRequest(
  port: number,
  payload: string | Buffer,
  opts: { waitMs?: number; halfClose?: boolean } = {},
): Promise<RawAnswer> {
  const waitMs = opts.waitMs ?? 5_000;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (ended: RawAnswer['ended']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, text, ended });
    };
    let timer = setTimeout(() => finish('gave-up'), waitMs);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      clearTimeout(timer);
      timer = setTimeout(() => finish('gave-up'), Math.min(waitMs, 500));
    });
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish('closed'));
    socket.on('connect', () => {
      socket.write(payload);
      if (opts.halfClose) socket.end();
    });
  });
}
