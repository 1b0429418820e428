import type net from 'node:net';

/** What every HTTP/2 client sends first (RFC 9113 §3.4), before its SETTINGS frame. */
const MAGIC = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const SETTINGS_FRAME = 0x4;
/** The initial SETTINGS_MAX_FRAME_SIZE; a longer first SETTINGS frame is refused by HTTP/2 anyway. */
const MAX_SETTINGS_BYTES = 16_384;
/** The first byte of a TLS handshake record. */
const TLS_HANDSHAKE = 0x16;

/**
 * Waits for the HTTP/2 client preface of a plaintext (h2c) connection — the magic line and a
 * whole SETTINGS frame — and puts the bytes read back into the socket (unshift), where the
 * HTTP/2 session that takes the socket next reads them first. Resolves true once it is whole;
 * false, leaving the socket to be destroyed, when the peer sends anything else, closes, or
 * takes longer than `timeoutMs` (a connection that opens and never finishes its preface
 * would otherwise hold its fd forever: grpc-js starts its idle timer only with a session).
 */
export function awaitPreface(socket: net.Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const finish = (whole: boolean): void => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onEnd);
      socket.pause();
      if (whole) socket.unshift(received);
      resolve(whole);
    };
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      // A TLS ClientHello (record type 0x16) on this plaintext port: HTTP/2 answers it with its
      // SETTINGS and closes at once, which the client's TLS reports as "wrong version number" —
      // the clue that tells the caller to drop tls. Closing silently would hide it.
      if (received[0] === TLS_HANDSHAKE) return finish(true);
      const verdict = prefaceState(received);
      if (verdict !== 'partial') finish(verdict === 'whole');
    };
    const onEnd = (): void => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onEnd);
  });
}

/** Whether `bytes` start with a whole client preface, a part of one, or something else. */
export function prefaceState(bytes: Buffer): 'whole' | 'partial' | 'invalid' {
  const magicSeen = Math.min(bytes.length, MAGIC.length);
  if (!bytes.subarray(0, magicSeen).equals(MAGIC.subarray(0, magicSeen))) return 'invalid';
  if (bytes.length < MAGIC.length + FRAME_HEADER_BYTES) return 'partial';
  const payloadBytes = bytes.readUIntBE(MAGIC.length, 3);
  if (bytes[MAGIC.length + 3] !== SETTINGS_FRAME || payloadBytes > MAX_SETTINGS_BYTES) return 'invalid';
  return bytes.length >= MAGIC.length + FRAME_HEADER_BYTES + payloadBytes ? 'whole' : 'partial';
}
