// The p2pmq message id (src/pubsub/message.hpp, MessageIdFn::p2pmq; DESIGN.md §5),
// shared by peer.mjs (as gossipsub's msgIdFn) and the tests (to check ids):
//
//   from and seqno set:  sha256( uvarint(len(topic)) || topic || from || seqno )
//     from  = the origin's peer id as multihash bytes (peerId.toMultihash().bytes)
//     seqno = the 8 wire bytes, big-endian
//   otherwise:           sha256( data )
import { createHash } from 'node:crypto'

/** Unsigned LEB128 (multiformats unsigned-varint) of a non-negative safe integer. */
export function uvarint (n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`uvarint: ${n}`)
  const out = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** A seqno (bigint, number or decimal string) as the 8-byte big-endian wire field. */
export function seqnoBytes (seqno) {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(seqno))
  return b
}

/**
 * p2pmq id from its parts. from: a PeerId (anything with toMultihash()) or the
 * multihash bytes; seqno: bigint/number, or the 8 wire bytes; data: Uint8Array.
 */
export function p2pmqMsgIdFromParts ({ topic, from, seqno, data }) {
  const h = createHash('sha256')
  if (from != null && seqno != null) {
    const topicBytes = Buffer.from(topic, 'utf8')
    const fromBytes = typeof from.toMultihash === 'function' ? from.toMultihash().bytes : from
    const seqBytes = seqno instanceof Uint8Array ? seqno : seqnoBytes(seqno)
    if (seqBytes.length !== 8) throw new RangeError(`seqno must be 8 bytes, got ${seqBytes.length}`)
    h.update(uvarint(topicBytes.length))
    h.update(topicBytes)
    h.update(fromBytes)
    h.update(seqBytes)
  } else {
    h.update(data ?? new Uint8Array(0))
  }
  return new Uint8Array(h.digest())
}

/** gossipsub msgIdFn: takes the js-libp2p pubsub Message (signed or unsigned). */
export function p2pmqMsgIdFn (msg) {
  if (msg.type === 'signed') {
    return p2pmqMsgIdFromParts({ topic: msg.topic, from: msg.from, seqno: msg.sequenceNumber, data: msg.data })
  }
  return p2pmqMsgIdFromParts({ topic: msg.topic, data: msg.data })
}

export const toHex = bytes => Buffer.from(bytes).toString('hex')
