/**
 * Opens sockets to an upstream (unix or TCP) within a connect timeout. The only place that
 * calls `net.connect`; everything above receives a connected socket or a typed error.
 */
import net from 'node:net';
import { ConnectError, ConnectTimeoutError } from '../errors.js';
import type { UpstreamAddress } from './address.js';

/**
 * Where a socket's bytes go when read into a fixed buffer (`net.connect`'s `onread`): no
 * Readable machinery and no fresh 64 KiB allocation per read. `onData` gets a view into
 * `buffer` that is only valid during the call.
 */
export interface ReadSink {
  readonly buffer: Buffer;
  onData(chunk: Buffer): void;
}

/**
 * Open a connected socket, or reject with ConnectError / ConnectTimeoutError. With `sink`,
 * incoming bytes go to `sink.onData` instead of 'data' events.
 */
export function connectSocket(address: UpstreamAddress, timeoutMs: number, sink?: ReadSink): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onread = sink
      ? {
          buffer: sink.buffer,
          callback: (n: number, buf: Uint8Array): boolean => {
            sink.onData((buf as Buffer).subarray(0, n));
            return true;
          },
        }
      : undefined;
    const socket =
      address.kind === 'unix'
        ? net.connect({ path: address.path, ...(onread ? { onread } : {}) })
        : net.connect({ host: address.host, port: address.port, noDelay: true, ...(onread ? { onread } : {}) });
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
