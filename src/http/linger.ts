/**
 * Lingering close, as nginx does it (`lingering_close`, `lingering_timeout`): after a final
 * answer on a connection whose request was not read to its end (413, 408, a parse error),
 * half-close and keep reading, discarding, for up to `ms`. Closing at once with unread bytes
 * in the kernel makes it send a RST, and a RST can destroy the answer in the client's receive
 * buffer before the client has read it. The client's own close, or the deadline, ends it.
 */
import type { Socket } from 'node:net';

/**
 * Default linger: 2 s (nginx's lingering_timeout is 5 s). Long enough for a client to read an
 * answer it was sent; short, because a client that neither reads nor leaves holds the socket.
 */
export const LINGER_MS = 2000;

/** End `socket` (writing `last` first) and linger; see the module comment. */
export function lingerClose(socket: Socket, last?: string | Buffer, ms = LINGER_MS): void {
  if (socket.destroyed) return;
  if (last === undefined) socket.end();
  else socket.end(last);
  const timer = setTimeout(() => socket.destroy(), ms);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  // Nothing parses these bytes any more: drop them so the peer's writes can finish.
  socket.removeAllListeners('data');
  socket.on('data', () => {});
  socket.resume();
}

/**
 * Make node:http's close after a `Connection: close` response (it calls `destroySoon()`)
 * a lingering close, for a response sent before the request body was read.
 */
export function lingerWhenDone(socket: Socket, ms = LINGER_MS): void {
  socket.destroySoon = () => lingerClose(socket, undefined, ms);
}
