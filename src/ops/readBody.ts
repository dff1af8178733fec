// Reads a request body with a hard size limit, so no route ever buffers an unbounded body. Every route that
// takes a body (and the server itself, for bodies sent to routes that take none) goes through this.
import type http from 'node:http';
import { ApiRequestError } from '../errors.js';

/** The largest request body the service accepts (the HTTP contract: over 64 KB answers 413). */
export const MAX_BODY_BYTES = 64 * 1024;

/** The body was over the limit: answer 413 and close the connection (the rest of the body is never read). */
export class BodyTooLargeError extends ApiRequestError {
  constructor(readonly limit: number) {
    super(413, `request body over ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** True when the request announces a body (a length above 0, or chunked transfer). */
export function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The whole body, or BodyTooLargeError as soon as it passes `limit` bytes (a declared Content-Length over the
 * limit fails before reading anything). On overflow the stream is paused, not destroyed, so the caller can
 * still answer 413; answer with `connection: close` so the unread rest is dropped with the connection.
 */
export function readBody(req: http.IncomingMessage, limit: number = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => {
      cleanup();
      reject(new ApiRequestError(400, 'request body incomplete: the client closed the connection'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
