//go:build unix

package broker

import "syscall"

// writeNonblocking writes what the socket fd takes of p now.
func writeNonblocking(fd uintptr, p []byte) (n int, err error) {
	for n < len(p) {
		k, e := syscall.Write(int(fd), p[n:])
		if k > 0 {
			n += k
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return n, errWouldBlock
		case e != nil:
			return n, e
		case k <= 0:
			return n, errWouldBlock
		}
	}
	return n, nil
}
