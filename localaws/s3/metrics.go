package s3

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons an upload was aborted (label of the aborted counter).
const (
	abortRequest = "request"
	abortExpired = "expired"
)

// metrics count what multipart uploads do, so that a resumed upload can be
// seen to send each part once.
type metrics struct {
	parts   *prometheus.CounterVec // by result: stored, failed
	aborted *prometheus.CounterVec // by reason: request, expired
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		parts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_localaws_s3_upload_parts_total",
			Help: "UploadPart requests localaws answered, by result (stored, failed).",
		}, []string{"result"}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_localaws_s3_multipart_aborted_total",
			Help: "Multipart uploads aborted, by reason (request, expired: incomplete past AbortIncompleteAfter).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.parts, m.aborted} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
