/**
 * "The client went away" for one request, whatever its state. A response that is running
 * gets 'close' on `res`; a pipelined request whose response still waits behind another one
 * gets nothing on its `res` when the client hangs up (node:http only destroys its `req`), so
 * the socket's own 'close' is watched too. One socket listener serves every request pipelined
 * on that socket, so a deep pipeline does not pile up listeners.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isHttp2 } from './wire.js';

const watchers = new WeakMap<Socket, Set<() => void>>();

function onSocketClose(this: Socket): void {
  const set = watchers.get(this);
  if (set === undefined) return;
  watchers.delete(this);
  for (const fn of [...set]) fn();
}

/** Call `fn` once when the client connection of `req` closes; returns the disposer. */
export function whenClientGone(req: IncomingMessage, res: ServerResponse, fn: () => void): () => void {
  const socket = req.socket;
  let fired = false;
  const once = (): void => {
    if (fired) return;
    fired = true;
    dispose();
    fn();
  };
  const dispose = (): void => {
    res.removeListener('close', once);
    const set = watchers.get(socket);
    if (set !== undefined) set.delete(once);
  };
  res.on('close', once);
  // HTTP/2: `req.socket` stands for the stream, whose end `res` reports already.
  if (isHttp2(req)) return dispose;
  if (socket.destroyed) {
    queueMicrotask(once);
    return dispose;
  }
  let set = watchers.get(socket);
  if (set === undefined) {
    set = new Set();
    watchers.set(socket, set);
    socket.once('close', onSocketClose);
  }
  set.add(once);
  return dispose;
}

/**
 * Run `go` once `res` is the response its connection is sending: at once, unless the request
 * was pipelined behind another whose response is still going out. `gone` runs instead when the
 * client leaves first. Upstream work waits for this, as nginx handles a connection's pipelined
 * requests one at a time: a response that cannot be sent yet would otherwise hold a php-fpm
 * connection that the request ahead of it may be waiting for.
 */
export function whenResponseTurn(req: IncomingMessage, res: ServerResponse, go: () => void, gone: () => void): void {
  if (res.socket !== null) {
    go();
    return;
  }
  const start = (): void => {
    stop();
    go();
  };
  const stop = whenClientGone(req, res, () => {
    res.removeListener('socket', start);
    gone();
  });
  res.once('socket', start);
}
