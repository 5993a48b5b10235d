// write()'s arguments as net.Socket#write takes them: bytes as a string (with an encoding), a Buffer or a Uint8Array.
// Anything else is the caller's bug and throws at once, with Node's own error codes, before anything is queued.

export function argError(code: string, message: string): TypeError {
  return Object.assign(new TypeError(message), { code });
}

export function toBuffer(data: string | Uint8Array, encoding: BufferEncoding | undefined): Buffer {
  if (typeof data === 'string') {
    if (encoding === undefined || encoding === 'utf8' || encoding === 'utf-8') return Buffer.from(data, 'utf8');
    if (typeof encoding !== 'string' || !Buffer.isEncoding(encoding)) {
      throw argError('ERR_UNKNOWN_ENCODING', `write(): unknown encoding ${JSON.stringify(encoding)}`);
    }
    return Buffer.from(data, encoding);
  }
  if (encoding !== undefined && typeof encoding !== 'string') {
    throw argError('ERR_INVALID_ARG_TYPE', `write() encoding must be a string, got ${typeof encoding}`);
  }
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw argError('ERR_INVALID_ARG_TYPE', `write() takes a string, Buffer or Uint8Array, got ${data === null ? 'null' : Array.isArray(data) ? 'an array' : typeof data}`);
}
