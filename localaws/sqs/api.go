package sqs

import (
	"context"
	"encoding/base64"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// call carries per-request facts both protocols share.
type call struct {
	pathQueue string // queue name when the request was POSTed to a queue URL
	senderID  string
	requestID string
}

// queueName resolves a QueueUrl parameter (or the request path) to a name.
func (c *call) queueName(queueURL string) (string, error) {
	if queueURL == "" {
		if c.pathQueue != "" {
			return c.pathQueue, nil
		}
		return "", errMissing("QueueUrl")
	}
	path := queueURL
	if u, err := url.Parse(queueURL); err == nil && u.Path != "" {
		path = u.Path
	}
	path = strings.Trim(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	if !validQueueName(path) {
		return "", errNoQueue(queueURL)
	}
	return path, nil
}

func (s *Service) apiCreateQueue(ctx context.Context, _ *call, in *createQueueInput) (*queueURLOutput, error) {
	if in.QueueName == "" {
		return nil, errMissing("QueueName")
	}
	u, err := s.createQueue(ctx, in.QueueName, in.Attributes, in.Tags)
	if err != nil {
		return nil, err
	}
	return &queueURLOutput{QueueUrl: u}, nil
}

func (s *Service) apiGetQueueURL(_ context.Context, _ *call, in *getQueueURLInput) (*queueURLOutput, error) {
	if in.QueueName == "" {
		return nil, errMissing("QueueName")
	}
	if _, err := s.lookup(in.QueueName); err != nil {
		return nil, err
	}
	return &queueURLOutput{QueueUrl: s.queueURL(in.QueueName)}, nil
}

func pageArgs(token string, maxResults *int) (after string, max int, err error) {
	max = 1000
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > 1000 {
			return "", 0, errInvalidParam("MaxResults", *maxResults, "MaxResults must be an integer between 1 and 1000.")
		}
		max = *maxResults
	}
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return "", 0, errInvalidParam("NextToken", token, "Invalid NextToken value.")
		}
		after = string(b)
	}
	return after, max, nil
}

func nextToken(names []string, more bool) string {
	if !more || len(names) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
}

func (s *Service) apiListQueues(_ context.Context, _ *call, in *listQueuesInput) (*listQueuesOutput, error) {
	after, max, err := pageArgs(in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	names, more := s.listQueues(in.QueueNamePrefix, after, max)
	out := &listQueuesOutput{}
	for _, n := range names {
		out.QueueUrls = append(out.QueueUrls, s.queueURL(n))
	}
	if in.MaxResults != nil {
		out.NextToken = nextToken(names, more)
	}
	return out, nil
}

func (s *Service) apiDeleteQueue(ctx context.Context, c *call, in *queueInput) (*emptyOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, s.deleteQueue(ctx, name)
}

func (s *Service) apiPurgeQueue(ctx context.Context, c *call, in *queueInput) (*emptyOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, s.purgeQueue(ctx, name)
}

func (s *Service) apiGetQueueAttributes(_ context.Context, c *call, in *getQueueAttributesInput) (*attributesOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	attrs, err := s.getAttributes(name, in.AttributeNames)
	if err != nil {
		return nil, err
	}
	return &attributesOutput{Attributes: attrs}, nil
}

func (s *Service) apiSetQueueAttributes(ctx context.Context, c *call, in *setQueueAttributesInput) (*emptyOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if len(in.Attributes) == 0 {
		return nil, errMissing("Attributes")
	}
	return &emptyOutput{}, s.setAttributes(ctx, name, in.Attributes)
}

func (s *Service) queueFor(c *call, queueURL string) (*queue, error) {
	name, err := c.queueName(queueURL)
	if err != nil {
		return nil, err
	}
	return s.lookup(name)
}

func checkFIFOParams(dedup, group string) error {
	if dedup != "" {
		return errInvalidParam("MessageDeduplicationId", dedup, "The request includes a parameter that is not valid for this queue type.")
	}
	if group != "" {
		return errInvalidParam("MessageGroupId", group, "The request includes a parameter that is not valid for this queue type.")
	}
	return nil
}

func (s *Service) apiSendMessage(ctx context.Context, c *call, in *sendMessageInput) (*sendMessageOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if err := checkFIFOParams(in.MessageDeduplicationId, in.MessageGroupId); err != nil {
		return nil, err
	}
	res, err := s.send(ctx, q, c.senderID, []sendEntry{{Body: in.MessageBody, Delay: in.DelaySeconds, Attrs: in.MessageAttributes, SysAttrs: in.MessageSystemAttributes}})
	if err != nil {
		return nil, err
	}
	r := res[0]
	if r.Err != nil {
		return nil, r.Err
	}
	return &sendMessageOutput{MessageId: r.ID, MD5OfMessageBody: r.MD5Body, MD5OfMessageAttributes: r.MD5Attrs, MD5OfMessageSystemAttributes: r.MD5Sys}, nil
}

var batchIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// checkBatch applies the batch-level rules shared by every *Batch action.
func checkBatch(ids []string) error {
	if len(ids) == 0 {
		return apiErr(ErrEmptyBatchRequest, "There should be at least one batch entry in the request.")
	}
	if len(ids) > maxBatchEntries {
		return apiErr(ErrTooManyEntriesInBatch, "Maximum number of entries per request are %d. You have sent %d.", maxBatchEntries, len(ids))
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !batchIDRE.MatchString(id) {
			return apiErr(ErrInvalidBatchEntryID, "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long (id %q).", id)
		}
		if seen[id] {
			return apiErr(ErrBatchEntryIdsNotDistinct, "Id %s repeated.", id)
		}
		seen[id] = true
	}
	return nil
}

func batchError(id string, err error) batchErrorEntry {
	e, _ := asAPIError(err)
	return batchErrorEntry{Id: id, SenderFault: e.Kind.Sender, Code: e.Kind.QueryCode, Message: e.Message}
}

func (s *Service) apiSendMessageBatch(ctx context.Context, c *call, in *sendMessageBatchInput) (*sendMessageBatchOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	entries := make([]sendEntry, len(in.Entries))
	total := 0
	for i, e := range in.Entries {
		ids[i] = e.Id
		entries[i] = sendEntry{Body: e.MessageBody, Delay: e.DelaySeconds, Attrs: e.MessageAttributes, SysAttrs: e.MessageSystemAttributes}
		if e.MessageBody != nil {
			total += len(*e.MessageBody)
		}
		for n, v := range e.MessageAttributes {
			total += len(n) + len(v.DataType) + len(v.BinaryValue)
			if v.StringValue != nil {
				total += len(*v.StringValue)
			}
		}
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	if total > maxBatchPayload {
		return nil, apiErr(ErrBatchRequestTooLong, "Batch requests cannot be longer than %d bytes. You have sent %d bytes.", maxBatchPayload, total)
	}
	res, err := s.send(ctx, q, c.senderID, entries)
	if err != nil {
		return nil, err
	}
	out := &sendMessageBatchOutput{Successful: []sendBatchResultEntry{}, Failed: []batchErrorEntry{}}
	for i, r := range res {
		if r.Err == nil {
			if e := in.Entries[i]; e.MessageDeduplicationId != "" || e.MessageGroupId != "" {
				r.Err = checkFIFOParams(e.MessageDeduplicationId, e.MessageGroupId)
			}
		}
		if r.Err != nil {
			out.Failed = append(out.Failed, batchError(ids[i], r.Err))
			continue
		}
		out.Successful = append(out.Successful, sendBatchResultEntry{Id: ids[i], sendMessageOutput: sendMessageOutput{
			MessageId: r.ID, MD5OfMessageBody: r.MD5Body, MD5OfMessageAttributes: r.MD5Attrs, MD5OfMessageSystemAttributes: r.MD5Sys}})
	}
	return out, nil
}

// System attribute names a receive may ask for.
const (
	sysSenderID          = "SenderId"
	sysSentTimestamp     = "SentTimestamp"
	sysReceiveCount      = "ApproximateReceiveCount"
	sysFirstReceiveStamp = "ApproximateFirstReceiveTimestamp"
	sysAWSTraceHeader    = "AWSTraceHeader"
)

func (s *Service) apiReceiveMessage(ctx context.Context, c *call, in *receiveMessageInput) (*receiveMessageOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	p := receiveParams{Max: 1, Visibility: in.VisibilityTimeout, Wait: in.WaitTimeSeconds,
		SysNames: append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...), AttrNames: in.MessageAttributeNames}
	if in.MaxNumberOfMessages != nil {
		p.Max = *in.MaxNumberOfMessages
	}
	ds, err := s.receive(ctx, q, p)
	if err != nil {
		return nil, err
	}
	out := &receiveMessageOutput{}
	for _, d := range ds {
		out.Messages = append(out.Messages, renderMessage(d, p.SysNames, p.AttrNames))
	}
	return out, nil
}

// renderMessage builds the wire form of a delivery with the requested system
// and message attributes. MD5OfMessageAttributes covers exactly the message
// attributes returned, which is what SDKs verify it against.
func renderMessage(d delivery, sysNames, attrNames []string) messageOutput {
	m := messageOutput{MessageId: d.rec.ID, ReceiptHandle: d.receipt, MD5OfBody: d.rec.MD5Body, Body: d.rec.Body}
	all := map[string]string{
		sysSenderID:          d.rec.SenderID,
		sysSentTimestamp:     strconv.FormatInt(d.rec.SentMs, 10),
		sysReceiveCount:      strconv.FormatUint(uint64(d.receiveCount), 10),
		sysFirstReceiveStamp: strconv.FormatInt(d.firstRecvMs, 10),
	}
	if th, ok := d.rec.SysAttrs[sysAWSTraceHeader]; ok && th.StringValue != nil {
		all[sysAWSTraceHeader] = *th.StringValue
	}
	for _, n := range sysNames {
		if n == attrAll {
			m.Attributes = all
			break
		}
		if v, ok := all[n]; ok {
			if m.Attributes == nil {
				m.Attributes = map[string]string{}
			}
			m.Attributes[n] = v
		}
	}
	for name, v := range d.rec.Attrs {
		if attrWanted(name, attrNames) {
			if m.MessageAttributes == nil {
				m.MessageAttributes = map[string]AttributeValue{}
			}
			m.MessageAttributes[name] = v
		}
	}
	m.MD5OfMessageAttributes = md5OfAttributes(m.MessageAttributes)
	return m
}

// attrWanted matches a message attribute name against MessageAttributeNames
// ("All", ".*", "prefix.*" or exact names).
func attrWanted(name string, patterns []string) bool {
	for _, p := range patterns {
		switch {
		case p == attrAll || p == ".*":
			return true
		case strings.HasSuffix(p, ".*"):
			if strings.HasPrefix(name, strings.TrimSuffix(p, "*")) {
				return true
			}
		case p == name:
			return true
		}
	}
	return false
}

func (s *Service) apiDeleteMessage(ctx context.Context, c *call, in *deleteMessageInput) (*emptyOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if in.ReceiptHandle == nil || *in.ReceiptHandle == "" {
		return nil, errMissing("ReceiptHandle")
	}
	errs, err := s.deleteMessages(ctx, q, []string{*in.ReceiptHandle})
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, errs[0]
}

func (s *Service) apiDeleteMessageBatch(ctx context.Context, c *call, in *deleteMessageBatchInput) (*batchOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	handles := make([]string, len(in.Entries))
	for i, e := range in.Entries {
		ids[i], handles[i] = e.Id, e.ReceiptHandle
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	errs, err := s.deleteMessages(ctx, q, handles)
	if err != nil {
		return nil, err
	}
	return batchResult(ids, errs), nil
}

func batchResult(ids []string, errs []error) *batchOutput {
	out := &batchOutput{Successful: []batchIDEntry{}, Failed: []batchErrorEntry{}}
	for i, id := range ids {
		if errs[i] != nil {
			out.Failed = append(out.Failed, batchError(id, errs[i]))
		} else {
			out.Successful = append(out.Successful, batchIDEntry{Id: id})
		}
	}
	return out
}

func (s *Service) apiChangeMessageVisibility(ctx context.Context, c *call, in *changeVisibilityInput) (*emptyOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if in.ReceiptHandle == nil || *in.ReceiptHandle == "" {
		return nil, errMissing("ReceiptHandle")
	}
	if in.VisibilityTimeout == nil {
		return nil, errMissing("VisibilityTimeout")
	}
	errs, err := s.changeVisibility(ctx, q, []visibilityChange{{Handle: *in.ReceiptHandle, Timeout: *in.VisibilityTimeout}})
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, errs[0]
}

func (s *Service) apiChangeMessageVisibilityBatch(ctx context.Context, c *call, in *changeVisibilityBatchInput) (*batchOutput, error) {
	q, err := s.queueFor(c, in.QueueUrl)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(in.Entries))
	changes := make([]visibilityChange, len(in.Entries))
	for i, e := range in.Entries {
		ids[i] = e.Id
		changes[i] = visibilityChange{Handle: e.ReceiptHandle, Timeout: -1}
		if e.VisibilityTimeout != nil {
			changes[i].Timeout = *e.VisibilityTimeout
		}
	}
	if err := checkBatch(ids); err != nil {
		return nil, err
	}
	errs, err := s.changeVisibility(ctx, q, changes)
	if err != nil {
		return nil, err
	}
	return batchResult(ids, errs), nil
}

func (s *Service) apiTagQueue(ctx context.Context, c *call, in *tagQueueInput) (*emptyOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, s.setTags(ctx, name, in.Tags, nil)
}

func (s *Service) apiUntagQueue(ctx context.Context, c *call, in *untagQueueInput) (*emptyOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	return &emptyOutput{}, s.setTags(ctx, name, nil, in.TagKeys)
}

func (s *Service) apiListQueueTags(_ context.Context, c *call, in *queueInput) (*tagsOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	tags, err := s.tags(name)
	if err != nil {
		return nil, err
	}
	return &tagsOutput{Tags: tags}, nil
}

func (s *Service) apiListDeadLetterSourceQueues(_ context.Context, c *call, in *listDLQSourcesInput) (*listDLQSourcesOutput, error) {
	name, err := c.queueName(in.QueueUrl)
	if err != nil {
		return nil, err
	}
	if _, err := s.lookup(name); err != nil {
		return nil, err
	}
	after, max, err := pageArgs(in.NextToken, in.MaxResults)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range s.deadLetterSources(name) {
		if n > after {
			names = append(names, n)
		}
	}
	more := len(names) > max
	if more {
		names = names[:max]
	}
	out := &listDLQSourcesOutput{QueueUrls: []string{}}
	for _, n := range names {
		out.QueueUrls = append(out.QueueUrls, s.queueURL(n))
	}
	if in.MaxResults != nil {
		out.NextToken = nextToken(names, more)
	}
	return out, nil
}
