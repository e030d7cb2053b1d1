/**
 * FCGI_GET_VALUES (§4.1) on a dedicated connection: php-fpm answers the management record and
 * then closes the socket, so this never shares a pooled connection.
 */
import { GatewayError, ProtocolError, ReadTimeoutError, UpstreamClosedError } from '../errors.js';
import { RecordType, ValueName } from '../protocol/constants.js';
import { RecordDecoder } from '../protocol/decoder.js';
import { encodeGetValues } from '../protocol/encoder.js';
import { decodePairs } from '../protocol/params.js';
import type { UpstreamAddress } from './address.js';
import { connectSocket } from './connector.js';

/** What a responder reported; absent names were not reported. */
export interface ResponderValues {
  readonly maxConns?: number;
  readonly maxReqs?: number;
  readonly mpxsConns?: boolean;
  /** Every name-value pair received, as text. */
  readonly raw: ReadonlyMap<string, string>;
}

/** Ask a responder for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS. */
export async function queryValues(
  address: UpstreamAddress,
  options: { connectTimeout?: number; timeout?: number; names?: readonly string[] } = {},
): Promise<ResponderValues> {
  const names = options.names ?? [ValueName.MaxConns, ValueName.MaxReqs, ValueName.MpxsConns];
  const timeout = options.timeout ?? 2000;
  const socket = await connectSocket(address, options.connectTimeout ?? timeout);
  return new Promise<ResponderValues>((resolve, reject) => {
    const decoder = new RecordDecoder({ requestId: 0 });
    const raw = new Map<string, string>();
    let settled = false;
    const finish = (err: GatewayError | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) {
        reject(err);
        return;
      }
      const int = (n: string): number | undefined => {
        const v = raw.get(n);
        return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
      };
      const maxConns = int(ValueName.MaxConns);
      const maxReqs = int(ValueName.MaxReqs);
      const mpxs = int(ValueName.MpxsConns);
      resolve({
        ...(maxConns !== undefined ? { maxConns } : {}),
        ...(maxReqs !== undefined ? { maxReqs } : {}),
        ...(mpxs !== undefined ? { mpxsConns: mpxs !== 0 } : {}),
        raw,
      });
    };
    const timer = setTimeout(() => finish(new ReadTimeoutError(timeout)), timeout);
    timer.unref();
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (rec) => {
          if (rec.type === RecordType.GetValuesResult) {
            for (const [n, v] of decodePairs(rec.content)) raw.set(n.toString('latin1'), v.toString('latin1'));
            finish(null);
          } else if (rec.type === RecordType.UnknownType) {
            finish(new ProtocolError('responder does not support FCGI_GET_VALUES (UNKNOWN_TYPE)', 0));
          } else {
            finish(new ProtocolError(`unexpected record type ${rec.type} in reply to FCGI_GET_VALUES`, decoder.offset));
          }
        });
      } catch (err) {
        finish(err instanceof GatewayError ? err : new ProtocolError(String(err), decoder.offset));
      }
    });
    socket.on('error', (err) => finish(new UpstreamClosedError(true, err)));
    socket.on('close', () => finish(new UpstreamClosedError(true)));
    socket.write(encodeGetValues(names));
  });
}
