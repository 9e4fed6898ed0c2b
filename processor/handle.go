package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// handle runs one message with a visibility heartbeat once a worker is
// free for it, and deletes it when its work is done. A message still
// waiting for a worker when receiving stops (ctx) goes back to the queue
// at once; one running gets until work ends.
func (p *Processor) handle(ctx, work context.Context, received <-chan struct{}, m types.Message) {
	id := aws.ToString(m.MessageId)
	run, k, err := p.route(id, []byte(aws.ToString(m.Body)))
	if err != nil {
		// Left alone on purpose, with the queue's own visibility timeout:
		// after maxReceiveCount receives the redrive policy moves it to the
		// dead-letter queue.
		p.log.Warn("malformed message left for the dead-letter queue", "message_id", id,
			"receive_count", receiveCount(m), "err", err)
		if p.leftForRedrive(m) {
			p.metrics.redriven.Inc()
		}
		return
	}
	hbCtx, stopHB := context.WithCancel(work)
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		p.heartbeat(hbCtx, m)
	}()
	hold, stopHold := context.WithTimeout(ctx, p.cfg.MaxHold)
	release, err := p.workers.acquire(hold, k.App, k.Channel)
	stopHold()
	if err != nil && ctx.Err() == nil {
		stopHB()
		hb.Wait()
		p.requeue(work, m)
		return
	}
	started := err == nil
	if started {
		err = run(work)
		release()
	}
	stopHB()
	hb.Wait()
	// Deleting and releasing must happen even while shutting down.
	bg, cancel := context.WithTimeout(context.WithoutCancel(work), 10*time.Second)
	defer cancel()
	switch {
	case err == nil:
		if _, err := p.cfg.Queue.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			p.log.Warn("delete message failed; it will be redelivered and its step repeated", "message_id", id, "err", err)
		} else {
			p.metrics.deleted.Inc()
		}
	case !started || work.Err() != nil:
		<-received
		// Shutdown came before the step started, or canceled it: make the
		// message visible now so another processor picks it up without
		// waiting.
		_, _ = p.cfg.Queue.ChangeMessageVisibility(bg, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(p.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
		p.log.Info("step canceled by shutdown; message returned to the queue", "message_id", id, "err", err)
	default:
		redrive := p.leftForRedrive(m)
		p.log.Warn("step failed; it will be retried after the visibility timeout", "message_id", id,
			"receive_count", receiveCount(m), "to_dead_letter_queue", redrive, "err", err)
		if redrive {
			p.metrics.redriven.Inc()
		}
	}
}

// requeue puts a message that waited MaxHold for a worker back at the end
// of the queue: sent again as a new message (so waiting never counts as a
// failed receive), then deleted. If the delete fails the step runs twice,
// which every step allows.
func (p *Processor) requeue(ctx context.Context, m types.Message) {
	id := aws.ToString(m.MessageId)
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.cfg.Queue.SendMessage(bg, &sqs.SendMessageInput{QueueUrl: aws.String(p.cfg.QueueURL), MessageBody: m.Body}); err != nil {
		p.log.Warn("held message not requeued; it reappears after its visibility timeout", "message_id", id, "err", err)
		return
	}
	p.metrics.requeued.Inc()
	if _, err := p.cfg.Queue.DeleteMessage(bg, &sqs.DeleteMessageInput{QueueUrl: aws.String(p.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		p.log.Warn("requeued message not deleted; its step may run twice", "message_id", id, "err", err)
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "held message requeued: no worker within max hold", slog.String("message_id", id),
		slog.Duration("max_hold", p.cfg.MaxHold))
}

// heartbeat renews the message's visibility (taken for Visibility by the
// receive) every Heartbeat until ctx ends. Most steps end before the
// first renewal, so they cost no queue call here.
func (p *Processor) heartbeat(ctx context.Context, m types.Message) {
	every(ctx, p.cfg.Heartbeat, func() bool {
		_, err := p.cfg.Queue.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(p.cfg.QueueURL), ReceiptHandle: m.ReceiptHandle,
			VisibilityTimeout: int32(p.cfg.Visibility / time.Second),
		})
		if err != nil && ctx.Err() == nil {
			p.log.Warn("visibility heartbeat failed", "message_id", aws.ToString(m.MessageId), "err", err)
		}
		return true
	})
}

// every calls f every d until ctx ends or f returns false.
func every(ctx context.Context, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !f() {
			return
		}
	}
}

func receiveCount(m types.Message) int {
	n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

// errMalformed marks a message that can never be handled.
var errMalformed = errors.New("malformed message")

func malformed(err error) error { return fmt.Errorf("%w: %w", errMalformed, err) }
