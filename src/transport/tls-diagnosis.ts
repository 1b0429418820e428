/*
 * What a failed TLS handshake means, for both transports: OpenSSL's reason, short, and for the
 * usual mistakes what to change (docs/HARDENING.md, "TLS"). The reasons come from Node's
 * TLSSocket errors on tcp and from grpc-js's last connection error on grpc; both carry the same
 * OpenSSL text.
 */

/**
 * The reason of a TLS failure in a few words: OpenSSL's long form
 * (`8000…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../ssl/…`) cut to
 * its reason (`wrong version number`), a leading `Error: ` dropped; other text unchanged.
 */
export function tlsReason(text: string): string {
  const openssl = /:SSL routines:[^:]*:([^:]+):/.exec(text);
  if (openssl !== null) return openssl[1]!.trim();
  return text.replace(/^Error: /, '').trim();
}

/** Whether `reason` (or the error code) is a TLS failure rather than, say, a refused connection. */
export function isTlsFailure(reason: string, code = ''): boolean {
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_TLS_') ||
    /certificate|self.signed|unable to verify|wrong version number|packet length too long|SSL routines|alert/i.test(reason)
  );
}

/**
 * What to change for the usual mistakes, as ` (…)` to append to the reason, or '' when the
 * reason is not one of them.
 */
export function tlsHint(reason: string): string {
  if (/wrong version number|packet length too long/i.test(reason)) return ' (does the provider serve TLS?)';
  if (/certificate required/i.test(reason)) return ' (the provider requires a client certificate: set cert and key)';
  if (/self.signed|unable to verify|unknown ca/i.test(reason)) return " (is ca the CA that signed the provider's certificate?)";
  if (/altnames|hostname|IP: .* is not in the cert/i.test(reason))
    return " (the provider's certificate does not name the address dialled: set serverName to a name it does)";
  return '';
}

/** The hint for a provider that closed a plaintext connection before the protocol started. */
export function plaintextRefusedHint(transport: 'tcp' | 'grpc'): string {
  return ` (a provider that requires TLS closes plaintext connections this way; set tls on this client's ${transport} transport: { type: '${transport}', options: { tls: { ca } } })`;
}
