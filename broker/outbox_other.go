//go:build !unix

package broker

// writeNonblocking is not offered here: every write goes to the flusher.
func writeNonblocking(uintptr, []byte) (int, error) { return 0, errWouldBlock }
