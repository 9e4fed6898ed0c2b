package tenant

// MQTTInfo tells a browser how to reach the broker with its session: the
// "mqtt" member of a session. The embedded broker gives its WebSocket URL;
// an external broker may give a URL presigned for the one session (AWS IoT
// Core).
type MQTTInfo struct {
	URL             string `json:"url"`
	ProtocolVersion int    `json:"protocolVersion"`
}
