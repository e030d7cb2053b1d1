/**
 * Opens sockets to an upstream (unix or TCP) within a connect timeout. The only place that
 * calls `net.connect`; everything above receives a connected socket or a typed error.
 */
import net from 'node:net';
import { ConnectError, ConnectTimeoutError } from '../errors.js';
import type { UpstreamAddress } from './address.js';

/** Open a connected socket, or reject with ConnectError / ConnectTimeoutError. */
export function connectSocket(address: UpstreamAddress, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      address.kind === 'unix'
        ? net.connect({ path: address.path })
        : net.connect({ host: address.host, port: address.port, noDelay: true });
    let timer: NodeJS.Timeout | null = null;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      socket.removeListener('connect', onConnect);
      socket.removeListener('error', onError);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(new ConnectError(address.text, err));
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(new ConnectTimeoutError(address.text, timeoutMs));
      }, timeoutMs);
      timer.unref();
    }
  });
}
