package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The queue depth comes from GetQueueAttributes, which real SQS and
// localaws both answer, so the same gauges work in either. Every processor
// on a queue samples it; dashboards take the max across them.

// sampleQueue samples the job queue (and its dead-letter queue) every
// QueueSampleInterval until ctx ends.
func (p *Processor) sampleQueue(ctx context.Context) {
	every(ctx, p.cfg.QueueSampleInterval, func() bool {
		if err := p.sampleOnce(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("queue attributes not sampled", "queue", p.cfg.QueueURL, "err", err)
		}
		return true
	})
}

var depthAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameApproximateNumberOfMessages,
	types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
}

// sampleOnce reads the queue's depth and redrive policy, then the
// dead-letter queue's depth.
func (p *Processor) sampleOnce(ctx context.Context) error {
	names := append(append([]types.QueueAttributeName(nil), depthAttributes...), types.QueueAttributeNameRedrivePolicy)
	out, err := p.cfg.Queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(p.cfg.QueueURL), AttributeNames: names})
	if err != nil {
		return fmt.Errorf("get attributes of %s: %w", p.cfg.QueueURL, err)
	}
	p.setDepth("main", out.Attributes)
	rp, err := parseRedrivePolicy(out.Attributes[string(types.QueueAttributeNameRedrivePolicy)])
	if err != nil {
		return err
	}
	p.maxReceive.Store(int64(rp.maxReceiveCount))
	if rp.deadLetterARN == "" {
		return nil
	}
	if p.dlqURL == "" || p.dlqARN != rp.deadLetterARN {
		name, owner, err := queueFromARN(rp.deadLetterARN)
		if err != nil {
			return err
		}
		in := &sqs.GetQueueUrlInput{QueueName: aws.String(name)}
		if owner != "" {
			in.QueueOwnerAWSAccountId = aws.String(owner)
		}
		u, err := p.cfg.Queue.GetQueueUrl(ctx, in)
		if err != nil {
			return fmt.Errorf("find dead-letter queue %s: %w", rp.deadLetterARN, err)
		}
		p.dlqURL, p.dlqARN = aws.ToString(u.QueueUrl), rp.deadLetterARN
	}
	dlq, err := p.cfg.Queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(p.dlqURL), AttributeNames: depthAttributes})
	if err != nil {
		return fmt.Errorf("get attributes of %s: %w", p.dlqURL, err)
	}
	p.setDepth("dead_letter", dlq.Attributes)
	return nil
}

func (p *Processor) setDepth(queue string, attrs map[string]string) {
	for state, name := range map[string]types.QueueAttributeName{
		"visible":   types.QueueAttributeNameApproximateNumberOfMessages,
		"in_flight": types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		"delayed":   types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	} {
		if n, err := strconv.ParseFloat(attrs[string(name)], 64); err == nil {
			p.metrics.queue.WithLabelValues(queue, state).Set(n)
		}
	}
}

type redrivePolicy struct {
	deadLetterARN   string
	maxReceiveCount int
}

// parseRedrivePolicy reads the RedrivePolicy attribute; maxReceiveCount
// comes as a number or a string. An empty policy means no dead-letter
// queue.
func parseRedrivePolicy(s string) (redrivePolicy, error) {
	if s == "" {
		return redrivePolicy{}, nil
	}
	var raw struct {
		ARN string          `json:"deadLetterTargetArn"`
		Max json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return redrivePolicy{}, fmt.Errorf("queue RedrivePolicy %q: %w", s, err)
	}
	n, err := strconv.Atoi(strings.Trim(string(raw.Max), `"`))
	if err != nil || n < 1 {
		return redrivePolicy{}, fmt.Errorf("queue RedrivePolicy %q: maxReceiveCount is not a positive number", s)
	}
	return redrivePolicy{deadLetterARN: raw.ARN, maxReceiveCount: n}, nil
}

// queueFromARN splits arn:aws:sqs:{region}:{account}:{name}.
func queueFromARN(arn string) (name, account string, err error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || parts[5] == "" {
		return "", "", fmt.Errorf("dead-letter queue ARN %q: want arn:aws:sqs:region:account:name", arn)
	}
	return parts[5], parts[4], nil
}

// leftForRedrive reports whether a message left undeleted now goes to the
// dead-letter queue: it has been received as often as the redrive policy
// allows.
func (p *Processor) leftForRedrive(m types.Message) bool {
	max := p.maxReceive.Load()
	return max > 0 && int64(receiveCount(m)) >= max
}
