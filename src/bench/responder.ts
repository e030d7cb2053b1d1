/**
 * A minimal FastCGI responder on our own codec, for the `responder` workload: it answers every
 * request with the same small CGI response as soon as its STDIN ends, so what a benchmark
 * measures in front of it is the HTTP server and its FastCGI client, not PHP. It honours
 * FCGI_KEEP_CONN (closes after the answer when the client did not ask to keep the connection,
 * as php-fpm does), skips a request body, and answers ABORT_REQUEST. It is a benchmark backend,
 * not a test fake: nothing here injects faults.
 */
import { rmSync } from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { ProtocolStatus, RecordType } from '../protocol/constants.js';
import { type FcgiRecord, parseBeginRequest, RecordDecoder } from '../protocol/decoder.js';
import { encodeEndRequest, encodeStreamChunk, encodeStreamEnd } from '../protocol/encoder.js';

export interface Responder {
  /** `unix:PATH`, for the gateway and (without the prefix) nginx. */
  readonly address: string;
  readonly socketPath: string;
  /** Requests answered so far. */
  readonly answered: number;
  close(): Promise<void>;
}

/** Listen on `socketPath` and answer every request with `body` (text/plain). */
export function startResponder(socketPath: string, body: string): Promise<Responder> {
  const answerFor = (id: number): Buffer =>
    Buffer.concat([
      encodeStreamChunk(RecordType.Stdout, id, Buffer.from(`Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)),
      encodeStreamEnd(RecordType.Stdout, id),
      encodeEndRequest(id, 0, ProtocolStatus.RequestComplete),
    ]);
  let answered = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const decoder = new RecordDecoder();
    let keepConn = false;
    const onRecord = (rec: FcgiRecord): void => {
      switch (rec.type) {
        case RecordType.BeginRequest:
          keepConn = parseBeginRequest(rec.content).keepConn;
          return;
        case RecordType.Stdin:
          if (rec.content.length > 0) return; // the body is read and dropped
          answered++;
          if (keepConn) socket.write(answerFor(rec.requestId));
          else socket.end(answerFor(rec.requestId));
          return;
        case RecordType.AbortRequest:
          socket.write(encodeEndRequest(rec.requestId, 0, ProtocolStatus.RequestComplete));
          return;
        default:
          return; // PARAMS: not needed for a fixed answer
      }
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, onRecord);
      } catch {
        socket.destroy(); // a malformed stream: nothing sensible to answer
      }
    });
  });
  rmSync(socketPath, { force: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve({
        address: `unix:${socketPath}`,
        socketPath,
        get answered() {
          return answered;
        },
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/**
 * The responder in its own process (`node responder.js SOCKET BODY`), so its CPU is not the
 * bench's and its event loop does not share one with the load generator.
 */
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [socketPath, body] = process.argv.slice(2);
  if (socketPath === undefined || body === undefined) throw new Error('usage: responder.js SOCKET BODY');
  void startResponder(socketPath, body).then((r) => {
    process.send?.('ready');
    const stop = (): void => void r.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('disconnect', stop);
  });
}
