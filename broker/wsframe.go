package broker

import (
	"encoding/binary"
	"fmt"
)

// WebSocket opcodes and close codes (RFC 6455 §5.2, §7.4.1) used by the
// polled transport.
const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA

	wsCloseNormal      = 1000
	wsCloseProtocol    = 1002
	wsCloseUnsupported = 1003
	wsCloseTooBig      = 1009
)

// wsProtocolError is a client frame that breaks RFC 6455 or MQTT's use of
// it; Code is the close status the server answers with.
type wsProtocolError struct {
	Code   uint16
	Reason string
}

func (e *wsProtocolError) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", e.Reason, e.Code)
}

// wsFrameSink receives what a wsReader decodes: unmasked payload of binary
// messages (the MQTT byte stream) and whole control frames.
type wsFrameSink interface {
	data(p []byte)
	control(op byte, payload []byte)
}

// wsReader decodes the frames a WebSocket client sends from whatever chunks
// the socket yields. Between chunks it keeps at most one partial frame
// header and one partial control payload (≤ 125 bytes, allocated only
// while one is in progress), so an idle connection holds no buffer.
type wsReader struct {
	max int64 // largest data message accepted

	hdr  [14]byte // partial frame header
	nHdr int

	inFrame bool  // header complete, payload pending
	op      byte  // opcode of the current frame
	fin     bool  // current frame ends its message
	left    int64 // payload bytes left in the current frame
	mask    [4]byte
	maskPos int

	inMsg  bool  // a fragmented data message is open
	msgLen int64 // its bytes so far

	ctrl []byte // control payload collected so far
}

// feed decodes p, unmasking in place, and reports each piece to sink.
// After an error the reader must not be fed again.
func (r *wsReader) feed(p []byte, sink wsFrameSink) error {
	for len(p) > 0 {
		if !r.inFrame {
			var err error
			if p, err = r.header(p); err != nil {
				return err
			}
			if !r.inFrame {
				return nil // header continues in the next chunk
			}
			if r.left == 0 {
				if err := r.endFrame(sink); err != nil {
					return err
				}
			}
			continue
		}
		k := int(min(r.left, int64(len(p))))
		chunk := p[:k]
		p = p[k:]
		for i := range chunk {
			chunk[i] ^= r.mask[r.maskPos&3]
			r.maskPos++
		}
		r.left -= int64(k)
		if r.op >= wsOpClose {
			r.ctrl = append(r.ctrl, chunk...)
		} else if k > 0 {
			sink.data(chunk)
		}
		if r.left == 0 {
			if err := r.endFrame(sink); err != nil {
				return err
			}
		}
	}
	return nil
}

// header consumes header bytes from p; once a header is complete it checks
// it and sets up the frame.
func (r *wsReader) header(p []byte) ([]byte, error) {
	need := 2
	for {
		if r.nHdr >= 2 {
			if r.hdr[1]&0x80 == 0 {
				// Refuse before waiting for a mask key that will not come.
				return p, &wsProtocolError{wsCloseProtocol, "client frame not masked"}
			}
			need = 2 + 4 // mask key: clients always mask [RFC 6455 §5.1]
			switch r.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
		}
		if r.nHdr >= need || len(p) == 0 {
			break
		}
		k := copy(r.hdr[r.nHdr:need], p)
		r.nHdr += k
		p = p[k:]
	}
	if r.nHdr < need {
		return p, nil
	}

	b0, b1 := r.hdr[0], r.hdr[1]
	if b0&0x70 != 0 {
		return p, &wsProtocolError{wsCloseProtocol, "reserved bits set (no extension was negotiated)"}
	}
	op, fin := b0&0x0f, b0&0x80 != 0
	var n int64
	switch l := b1 & 0x7f; l {
	case 126:
		n = int64(binary.BigEndian.Uint16(r.hdr[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(r.hdr[2:10])
		if u>>63 != 0 {
			return p, &wsProtocolError{wsCloseProtocol, "payload length has its top bit set"}
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	copy(r.mask[:], r.hdr[need-4:need])

	switch op {
	case wsOpClose, wsOpPing, wsOpPong:
		if !fin || n > 125 {
			return p, &wsProtocolError{wsCloseProtocol, "fragmented or oversize control frame"}
		}
	case wsOpBinary:
		if r.inMsg {
			return p, &wsProtocolError{wsCloseProtocol, "new message inside a fragmented one"}
		}
		r.inMsg, r.msgLen = true, 0
	case wsOpContinuation:
		if !r.inMsg {
			return p, &wsProtocolError{wsCloseProtocol, "continuation without a message"}
		}
	case wsOpText:
		return p, &wsProtocolError{wsCloseUnsupported, "text frame (MQTT uses binary frames)"}
	default:
		return p, &wsProtocolError{wsCloseProtocol, fmt.Sprintf("unknown opcode %#x", op)}
	}
	if op < wsOpClose {
		r.msgLen += n
		if r.max > 0 && r.msgLen > r.max {
			return p, &wsProtocolError{wsCloseTooBig, fmt.Sprintf("message over %d bytes", r.max)}
		}
	}
	r.op, r.fin, r.left, r.maskPos = op, fin, n, 0
	r.nHdr, r.inFrame = 0, true
	return p, nil
}

// endFrame closes the current frame: control frames go to the sink whole,
// a final data frame closes its message.
func (r *wsReader) endFrame(sink wsFrameSink) error {
	r.inFrame = false
	if r.op >= wsOpClose {
		payload := r.ctrl
		r.ctrl = nil
		if r.op == wsOpClose && len(payload) == 1 {
			return &wsProtocolError{wsCloseProtocol, "close frame with a one-byte payload"}
		}
		sink.control(r.op, payload)
		return nil
	}
	if r.fin {
		r.inMsg = false
	}
	return nil
}

// appendWSHeader appends the header of an unmasked server frame (FIN set)
// carrying n payload bytes.
func appendWSHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}

// wsClosePayload is the body of a close frame: status code, no reason.
func wsClosePayload(code uint16) []byte {
	return binary.BigEndian.AppendUint16(nil, code)
}
