package sqs

import (
	"encoding/base64"
	"encoding/binary"
)

// A receipt handle names one delivery of one message: the queue's storage
// id, the message sequence number and the nonce minted by that receive. A
// later receive mints a new nonce, which is how stale handles are detected.
const receiptVersion = 1

func encodeReceipt(qid, seq, nonce uint64) string {
	b := make([]byte, 0, 25)
	b = append(b, receiptVersion)
	b = binary.BigEndian.AppendUint64(b, qid)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint64(b, nonce)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeReceipt(h string) (qid, seq, nonce uint64, ok bool) {
	if len(h) > 64 {
		return 0, 0, 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || len(b) != 25 || b[0] != receiptVersion {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:]), binary.BigEndian.Uint64(b[17:]), true
}

// receipt decodes a receipt handle of q into the message's sequence number
// and delivery nonce; a malformed handle, or one of another queue, is
// ReceiptHandleIsInvalid.
func (q *queue) receipt(h string) (seq, nonce uint64, err error) {
	qid, seq, nonce, ok := decodeReceipt(h)
	if !ok || qid != q.id {
		return 0, 0, apiErr(ErrReceiptHandleIsInvalid, "The input receipt handle %q is not a valid receipt handle.", h)
	}
	return seq, nonce, nil
}
