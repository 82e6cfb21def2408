// gRPC over node:http2 (h2c), just enough for the attack suite: unary calls, a
// server stream that is never read (the Listen attack), and a MsgValidation server.
// Hand-made on purpose: an attacker sends bytes a generated client would refuse to
// (invalid UTF-8 in a string field, an undecodable request). Message framing:
// 1 byte compressed flag, 4 bytes big-endian length, the protobuf.
import http2 from 'node:http2'

export const GRPC_STATUS = { OK: 0, INVALID_ARGUMENT: 3, UNIMPLEMENTED: 12, RESOURCE_EXHAUSTED: 8 }

export function grpcFrame (body) {
  const h = Buffer.alloc(5)
  h.writeUInt32BE(body.length, 1)
  return Buffer.concat([h, body])
}

/** Splits gRPC frames: [messages, rest]. */
export function splitGrpc (buf) {
  const out = []
  let pos = 0
  while (buf.length - pos >= 5) {
    const len = buf.readUInt32BE(pos + 1)
    if (buf.length - pos - 5 < len) break
    out.push(buf.subarray(pos + 5, pos + 5 + len))
    pos += 5 + len
  }
  return [out, buf.subarray(pos)]
}

const requestHeaders = path => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers'
})

export class GrpcClient {
  constructor (hostport) {
    this.session = http2.connect(`http://${hostport}`)
    this.session.on('error', () => {}) // surfaced per call
  }

  /** One request, one response: resolves { status, message, messages }. */
  unary (path, body, { timeoutMs = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const req = this.session.request(requestHeaders(path))
      let data = Buffer.alloc(0)
      let status = null
      let message = ''
      const timer = setTimeout(() => { req.close(http2.constants.NGHTTP2_CANCEL); reject(new Error(`${path}: no answer within ${timeoutMs} ms`)) }, timeoutMs)
      const takeStatus = headers => {
        if (headers['grpc-status'] != null) {
          status = Number(headers['grpc-status'])
          message = decodeURIComponent(headers['grpc-message'] ?? '')
        }
      }
      req.on('response', takeStatus) // a trailers-only answer carries the status here
      req.on('trailers', takeStatus)
      req.on('data', chunk => { data = Buffer.concat([data, chunk]) })
      req.on('error', err => { clearTimeout(timer); reject(err) })
      req.on('close', () => {
        clearTimeout(timer)
        resolve({ status, message, messages: splitGrpc(data)[0] })
      })
      req.end(grpcFrame(body))
    })
  }

  /**
   * A server-streaming call whose response is never read: the stream stays paused,
   * so HTTP/2 flow control stops the server after one window and whatever the agent
   * sends to it waits in the agent. Resolves once the response headers arrived.
   */
  unreadStream (path, body, { timeoutMs = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const req = this.session.request(requestHeaders(path))
      req.pause()
      const timer = setTimeout(() => reject(new Error(`${path}: no response headers within ${timeoutMs} ms`)), timeoutMs)
      req.on('response', () => { clearTimeout(timer); resolve(req) })
      req.on('error', err => { clearTimeout(timer); reject(err) })
      req.write(grpcFrame(body))
    })
  }

  close () { this.session.destroy() }
}

/**
 * A MsgValidation server: verdictOf(message) -> 1 ACCEPT | 2 IGNORE | 3 REJECT for each
 * Message the agent sends on ValidationChannel. Resolves { port, close, counts }.
 */
export async function startValidator (verdictOf, { decode, encode }) {
  const counts = { accept: 0, ignore: 0, reject: 0 }
  const server = http2.createServer()
  const sessions = new Set()
  server.on('session', s => { sessions.add(s); s.on('close', () => sessions.delete(s)) })
  server.on('stream', (stream, headers) => {
    if (headers[':path'] !== '/p2pmq.v1.MsgValidation/ValidationChannel') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '12' }, { endStream: true })
      return
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' })
    let pending = Buffer.alloc(0)
    stream.on('data', chunk => {
      const [msgs, rest] = splitGrpc(Buffer.concat([pending, chunk]))
      pending = Buffer.from(rest)
      for (const body of msgs) {
        const m = decode(body)
        const v = verdictOf(m)
        counts[v === 1 ? 'accept' : v === 2 ? 'ignore' : 'reject']++
        stream.write(grpcFrame(encode(m.id, v)))
      }
    })
    stream.on('error', () => {})
    stream.on('end', () => { if (!stream.closed) stream.end() })
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    counts,
    close: () => new Promise(resolve => {
      for (const s of sessions) s.destroy()
      server.close(() => resolve())
    })
  }
}
