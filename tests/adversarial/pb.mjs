// A few hand-written protobuf encoders and decoders for the attack suite: attackers
// must be able to send what no well-behaved library would (partial RPCs, invalid
// UTF-8 strings, huge control messages), so nothing here validates anything.
// Wire format: https://protobuf.dev/programming-guides/encoding/

export function uvarint (n) {
  let v = BigInt(n)
  const out = []
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v > 0n) b |= 0x80
    out.push(b)
  } while (v > 0n)
  return Buffer.from(out)
}

/** Length-delimited field `field` (wire type 2). */
export function bytesField (field, value) {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value)
  return Buffer.concat([uvarint((field << 3) | 2), uvarint(v.length), v])
}

/** Varint field `field` (wire type 0). */
export function varintField (field, value) {
  return Buffer.concat([uvarint(field << 3), uvarint(value)])
}

/** A message: uvarint(length) || body, the framing of gossipsub, kad-dht and sync streams. */
export function framed (body) {
  return Buffer.concat([uvarint(body.length), body])
}

/** Reads one uvarint at `pos`: [value (Number), next position] or null when incomplete. */
export function readUvarint (buf, pos) {
  let v = 0
  let shift = 0
  for (let i = pos; i < buf.length; i++) {
    const b = buf[i]
    v += (b & 0x7f) * 2 ** shift
    shift += 7
    if ((b & 0x80) === 0) return [v, i + 1]
    if (shift > 63) throw new Error('varint too long')
  }
  return null
}

/** The fields of one message: [{ field, wire, value }] (value: Buffer for wire 2, Number otherwise). */
export function decodeFields (buf) {
  const fields = []
  let pos = 0
  while (pos < buf.length) {
    const [tag, p1] = readUvarint(buf, pos)
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    if (wire === 0) {
      const [v, p2] = readUvarint(buf, p1)
      fields.push({ field, wire, value: v })
      pos = p2
    } else if (wire === 2) {
      const [len, p2] = readUvarint(buf, p1)
      fields.push({ field, wire, value: buf.subarray(p2, p2 + len) })
      pos = p2 + len
    } else if (wire === 1) {
      fields.push({ field, wire, value: buf.subarray(p1, p1 + 8) }); pos = p1 + 8
    } else if (wire === 5) {
      fields.push({ field, wire, value: buf.subarray(p1, p1 + 4) }); pos = p1 + 4
    } else {
      throw new Error(`unsupported wire type ${wire}`)
    }
  }
  return fields
}

/** Splits a stream of uvarint-framed messages: returns [messages, rest]. */
export function splitFramed (buf) {
  const out = []
  let pos = 0
  for (;;) {
    const h = readUvarint(buf, pos)
    if (h == null || h[1] + h[0] > buf.length) break
    out.push(buf.subarray(h[1], h[1] + h[0]))
    pos = h[1] + h[0]
  }
  return [out, buf.subarray(pos)]
}

// ---- gossipsub (libp2p pubsub.proto) ------------------------------------------------
// RPC { repeated SubOpts subscriptions = 1; repeated Message publish = 2; ControlMessage control = 3 }
// SubOpts { bool subscribe = 1; string topicid = 2 }
// Message { bytes from = 1; bytes data = 2; bytes seqno = 3; string topic = 4; bytes signature = 5; bytes key = 6 }
// ControlMessage { ihave = 1; iwant = 2; graft = 3; prune = 4; idontwant = 5 }

export function subOpts (topic, subscribe = true) {
  return Buffer.concat([varintField(1, subscribe ? 1 : 0), bytesField(2, topic)])
}

/** The Message body without signature and key: what StrictSign signs (after "libp2p-pubsub:"). */
export function messageUnsigned ({ from, data, seqno, topic }) {
  return Buffer.concat([bytesField(1, from), bytesField(2, data), bytesField(3, seqno), bytesField(4, topic)])
}

export function messageSigned (fields, signature, key) {
  return Buffer.concat([messageUnsigned(fields), bytesField(5, signature), ...(key ? [bytesField(6, key)] : [])])
}

export function seqnoBytes (seqno) {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(seqno))
  return b
}

export function rpc ({ subscriptions = [], publish = [], control = null } = {}) {
  return Buffer.concat([
    ...subscriptions.map(s => bytesField(1, s)),
    ...publish.map(m => bytesField(2, m)),
    ...(control ? [bytesField(3, control)] : [])
  ])
}

export function controlIHave (topic, ids) {
  return bytesField(1, Buffer.concat([bytesField(1, topic), ...ids.map(id => bytesField(2, id))]))
}

export function controlIWant (ids) {
  return bytesField(2, Buffer.concat(ids.map(id => bytesField(1, id))))
}

export function controlGraft (topic) {
  return bytesField(3, bytesField(1, topic))
}

export function controlPrune (topic, backoffSeconds = 0) {
  return bytesField(4, Buffer.concat([bytesField(1, topic), ...(backoffSeconds ? [varintField(3, backoffSeconds)] : [])]))
}

/** The ids of the published messages in one RPC, by a message id function of the Message fields. */
export function publishedMessages (rpcBody) {
  const msgs = []
  for (const f of decodeFields(rpcBody)) {
    if (f.field !== 2 || f.wire !== 2) continue
    const m = {}
    for (const g of decodeFields(f.value)) {
      if (g.field === 1) m.from = g.value
      else if (g.field === 2) m.data = g.value
      else if (g.field === 3) m.seqno = g.value
      else if (g.field === 4) m.topic = g.value.toString('utf8')
    }
    msgs.push(m)
  }
  return msgs
}

// ---- kad-dht (libp2p kad-dht Message) ---------------------------------------------
// Message { MessageType type = 1; bytes key = 2; Record record = 3; repeated Peer closerPeers = 8;
//           repeated Peer providerPeers = 9; int32 clusterLevelRaw = 10 }
// Peer { bytes id = 1; repeated bytes addrs = 2; ConnectionType connection = 3 }
export const KAD = { PUT_VALUE: 0, GET_VALUE: 1, ADD_PROVIDER: 2, GET_PROVIDERS: 3, FIND_NODE: 4, PING: 5 }

export function kadPeer (id, addrs) {
  return Buffer.concat([bytesField(1, id), ...addrs.map(a => bytesField(2, a))])
}

export function kadMessage ({ type, key, closer = [], providers = [] }) {
  return Buffer.concat([
    varintField(1, type),
    ...(key ? [bytesField(2, key)] : []),
    ...closer.map(p => bytesField(8, p)),
    ...providers.map(p => bytesField(9, p))
  ])
}

// ---- p2pmq gRPC messages (proto/p2pmq/v1/p2pmq.proto) -----------------------------
export function publishRequest (topic, data) {
  return Buffer.concat([bytesField(1, topic), bytesField(2, data)])
}

export function listenRequest (topics, bufferSize = 0) {
  return Buffer.concat([...topics.map(t => bytesField(1, t)), ...(bufferSize ? [varintField(2, bufferSize)] : [])])
}

/** ValidatedMessage { bytes id = 1; Verdict verdict = 2 } (ACCEPT 1, IGNORE 2, REJECT 3). */
export function validatedMessage (id, verdict) {
  return Buffer.concat([bytesField(1, id), varintField(2, verdict)])
}

/** Message (the gRPC one): id = 1, topic = 2, data = 3, origin = 4, seqno = 5. */
export function decodeApiMessage (buf) {
  const m = {}
  for (const f of decodeFields(buf)) {
    if (f.field === 1) m.id = Buffer.from(f.value)
    else if (f.field === 2) m.topic = f.value.toString('utf8')
    else if (f.field === 3) m.data = Buffer.from(f.value)
    else if (f.field === 4) m.origin = f.value.toString('utf8')
  }
  return m
}
