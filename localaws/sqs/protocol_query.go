package sqs

import (
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const xmlNamespace = "http://queue.amazonaws.com/doc/2012-11-05/"

// maxQueryIndex bounds the N of "Prefix.N" list members accepted.
const maxQueryIndex = 1000

// params are the decoded Query-protocol form fields.
type params url.Values

func (p params) str(k string) string { return url.Values(p).Get(k) }

func (p params) strp(k string) *string {
	if v, ok := p[k]; ok && len(v) > 0 {
		return &v[0]
	}
	return nil
}

func (p params) intp(k string) (*int, error) {
	v, ok := p[k]
	if !ok || len(v) == 0 {
		return nil, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v[0]))
	if err != nil {
		return nil, errInvalidParam(k, v[0], "Value must be an integer.")
	}
	return &n, nil
}

// members groups "prefix.N.rest" fields by N, in index order, each group
// keyed by rest ("" for "prefix.N" itself).
func (p params) members(prefix string) []params {
	groups := map[int]params{}
	for k, v := range p {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		idx, tail, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 || n > maxQueryIndex {
			continue
		}
		if groups[n] == nil {
			groups[n] = params{}
		}
		groups[n][tail] = v
	}
	ns := make([]int, 0, len(groups))
	for n := range groups {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	out := make([]params, len(ns))
	for i, n := range ns {
		out[i] = groups[n]
	}
	return out
}

// list decodes a flattened list "prefix.N".
func (p params) list(prefix string) []string {
	var out []string
	for _, m := range p.members(prefix) {
		if v := m.str(""); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// kv decodes a flattened map "prefix.N.<key>" / "prefix.N.<value>".
func (p params) kv(prefix, key, value string) map[string]string {
	ms := p.members(prefix)
	if len(ms) == 0 {
		return nil
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		if k := m.str(key); k != "" {
			out[k] = m.str(value)
		}
	}
	return out
}

// msgAttrs decodes "prefix.N.Name" with "prefix.N.Value.DataType",
// ".StringValue" and ".BinaryValue" (base64).
func (p params) msgAttrs(prefix string) (map[string]AttributeValue, error) {
	ms := p.members(prefix)
	if len(ms) == 0 {
		return nil, nil
	}
	out := make(map[string]AttributeValue, len(ms))
	for _, m := range ms {
		name := m.str("Name")
		if name == "" {
			return nil, errMissing(prefix + ".N.Name")
		}
		v := AttributeValue{DataType: m.str("Value.DataType"), StringValue: m.strp("Value.StringValue")}
		if b := m.strp("Value.BinaryValue"); b != nil {
			raw, err := base64.StdEncoding.DecodeString(*b)
			if err != nil {
				return nil, errInvalidParam(prefix+".Value.BinaryValue", "(binary)", "Value must be base64 encoded.")
			}
			v.BinaryValue = raw
		}
		out[name] = v
	}
	return out, nil
}

func (p params) int32p(k string) (*int32, error) {
	n, err := p.intp(k)
	if err != nil || n == nil {
		return nil, err
	}
	v := int32(*n)
	if int(v) != *n {
		return nil, errInvalidParam(k, *n, "Value is out of range.")
	}
	return &v, nil
}

func queryCreateQueue(p params) (*createQueueInput, error) {
	return &createQueueInput{QueueName: p.str("QueueName"), Attributes: p.kv("Attribute", "Name", "Value"), Tags: p.kv("Tag", "Key", "Value")}, nil
}

func queryGetQueueURL(p params) (*getQueueURLInput, error) {
	return &getQueueURLInput{QueueName: p.str("QueueName"), QueueOwnerAWSAccountId: p.str("QueueOwnerAWSAccountId")}, nil
}

func queryListQueues(p params) (*listQueuesInput, error) {
	max, err := p.intp("MaxResults")
	return &listQueuesInput{QueueNamePrefix: p.str("QueueNamePrefix"), NextToken: p.str("NextToken"), MaxResults: max}, err
}

func queryQueue(p params) (*queueInput, error) {
	return &queueInput{QueueUrl: p.str("QueueUrl")}, nil
}

func queryGetQueueAttributes(p params) (*getQueueAttributesInput, error) {
	return &getQueueAttributesInput{QueueUrl: p.str("QueueUrl"), AttributeNames: p.list("AttributeName")}, nil
}

func querySetQueueAttributes(p params) (*setQueueAttributesInput, error) {
	return &setQueueAttributesInput{QueueUrl: p.str("QueueUrl"), Attributes: p.kv("Attribute", "Name", "Value")}, nil
}

func querySendMessage(p params) (*sendMessageInput, error) {
	delay, err := p.int32p("DelaySeconds")
	if err != nil {
		return nil, err
	}
	attrs, err := p.msgAttrs("MessageAttribute")
	if err != nil {
		return nil, err
	}
	sys, err := p.msgAttrs("MessageSystemAttribute")
	if err != nil {
		return nil, err
	}
	return &sendMessageInput{QueueUrl: p.str("QueueUrl"), MessageBody: p.strp("MessageBody"), DelaySeconds: delay,
		MessageAttributes: attrs, MessageSystemAttributes: sys,
		MessageDeduplicationId: p.str("MessageDeduplicationId"), MessageGroupId: p.str("MessageGroupId")}, nil
}

func querySendMessageBatch(p params) (*sendMessageBatchInput, error) {
	in := &sendMessageBatchInput{QueueUrl: p.str("QueueUrl")}
	for _, m := range p.members("SendMessageBatchRequestEntry") {
		e, err := querySendMessage(m)
		if err != nil {
			return nil, err
		}
		in.Entries = append(in.Entries, sendBatchEntry{Id: m.str("Id"), MessageBody: e.MessageBody, DelaySeconds: e.DelaySeconds,
			MessageAttributes: e.MessageAttributes, MessageSystemAttributes: e.MessageSystemAttributes,
			MessageDeduplicationId: e.MessageDeduplicationId, MessageGroupId: e.MessageGroupId})
	}
	return in, nil
}

func queryReceiveMessage(p params) (*receiveMessageInput, error) {
	in := &receiveMessageInput{QueueUrl: p.str("QueueUrl"), AttributeNames: p.list("AttributeName"),
		MessageSystemAttributeNames: p.list("MessageSystemAttributeName"), MessageAttributeNames: p.list("MessageAttributeName")}
	var err error
	if in.MaxNumberOfMessages, err = p.intp("MaxNumberOfMessages"); err != nil {
		return nil, err
	}
	if in.VisibilityTimeout, err = p.intp("VisibilityTimeout"); err != nil {
		return nil, err
	}
	if in.WaitTimeSeconds, err = p.intp("WaitTimeSeconds"); err != nil {
		return nil, err
	}
	return in, nil
}

func queryDeleteMessage(p params) (*deleteMessageInput, error) {
	return &deleteMessageInput{QueueUrl: p.str("QueueUrl"), ReceiptHandle: p.strp("ReceiptHandle")}, nil
}

func queryDeleteMessageBatch(p params) (*deleteMessageBatchInput, error) {
	in := &deleteMessageBatchInput{QueueUrl: p.str("QueueUrl")}
	for _, m := range p.members("DeleteMessageBatchRequestEntry") {
		in.Entries = append(in.Entries, deleteBatchEntry{Id: m.str("Id"), ReceiptHandle: m.str("ReceiptHandle")})
	}
	return in, nil
}

func queryChangeVisibility(p params) (*changeVisibilityInput, error) {
	vt, err := p.intp("VisibilityTimeout")
	return &changeVisibilityInput{QueueUrl: p.str("QueueUrl"), ReceiptHandle: p.strp("ReceiptHandle"), VisibilityTimeout: vt}, err
}

func queryChangeVisibilityBatch(p params) (*changeVisibilityBatchInput, error) {
	in := &changeVisibilityBatchInput{QueueUrl: p.str("QueueUrl")}
	for _, m := range p.members("ChangeMessageVisibilityBatchRequestEntry") {
		vt, err := m.intp("VisibilityTimeout")
		if err != nil {
			return nil, err
		}
		in.Entries = append(in.Entries, changeVisibilityBatchEntry{Id: m.str("Id"), ReceiptHandle: m.str("ReceiptHandle"), VisibilityTimeout: vt})
	}
	return in, nil
}

func queryTagQueue(p params) (*tagQueueInput, error) {
	return &tagQueueInput{QueueUrl: p.str("QueueUrl"), Tags: p.kv("Tag", "Key", "Value")}, nil
}

func queryUntagQueue(p params) (*untagQueueInput, error) {
	return &untagQueueInput{QueueUrl: p.str("QueueUrl"), TagKeys: p.list("TagKey")}, nil
}

func queryListDLQSources(p params) (*listDLQSourcesInput, error) {
	max, err := p.intp("MaxResults")
	return &listDLQSourcesInput{QueueUrl: p.str("QueueUrl"), NextToken: p.str("NextToken"), MaxResults: max}, err
}

// parseQuery reads the Query-protocol fields of r: the URL query plus a
// form-encoded body.
func parseQuery(r *http.Request) (params, error) {
	vals := r.URL.Query()
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, apiErr(ErrInvalidParameterValue, "Malformed form body: %v", err)
		}
		for k, v := range form {
			vals[k] = append(vals[k], v...)
		}
	}
	return params(vals), nil
}

func (s *Service) serveQuery(w http.ResponseWriter, r *http.Request, c *call) {
	p, err := parseQuery(r)
	if err != nil {
		s.writeXMLError(w, c, err)
		return
	}
	action := p.str("Action")
	op, ok := operations[action]
	if !ok {
		if action == "" {
			s.writeXMLError(w, c, errMissing("Action"))
		} else {
			s.writeXMLError(w, c, apiErr(ErrInvalidAction, "The action %s is not valid for this endpoint.", action))
		}
		return
	}
	render, err := op.query(s, r.Context(), c, p)
	if err != nil {
		s.logFailure(action, err)
		s.writeXMLError(w, c, err)
		return
	}
	var b xmlBuilder
	b.raw(`<?xml version="1.0"?>`)
	b.raw(`<` + action + `Response xmlns="` + xmlNamespace + `">`)
	if render != nil {
		b.open(action + "Result")
		render(&b)
		b.close(action + "Result")
	}
	b.open("ResponseMetadata")
	b.leaf("RequestId", c.requestID)
	b.close("ResponseMetadata")
	b.close(action + "Response")
	w.Header().Set("Content-Type", "text/xml")
	w.Write([]byte(b.String()))
}

func (s *Service) writeXMLError(w http.ResponseWriter, c *call, err error) {
	e, _ := asAPIError(err)
	fault := "Sender"
	if !e.Kind.Sender {
		fault = "Receiver"
	}
	var b xmlBuilder
	b.raw(`<?xml version="1.0"?>`)
	b.raw(`<ErrorResponse xmlns="` + xmlNamespace + `">`)
	b.open("Error")
	b.leaf("Type", fault)
	b.leaf("Code", e.Kind.QueryCode)
	b.leaf("Message", e.Message)
	b.raw("<Detail/>")
	b.close("Error")
	b.leaf("RequestId", c.requestID)
	b.close("ErrorResponse")
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Kind.Status)
	w.Write([]byte(b.String()))
}

// xmlBuilder writes the small, fixed XML shapes of Query responses.
type xmlBuilder struct{ strings.Builder }

func (b *xmlBuilder) raw(s string)   { b.WriteString(s) }
func (b *xmlBuilder) open(n string)  { b.WriteString("<" + n + ">") }
func (b *xmlBuilder) close(n string) { b.WriteString("</" + n + ">") }
func (b *xmlBuilder) leaf(n, v string) {
	b.open(n)
	xml.EscapeText(b, []byte(v))
	b.close(n)
}

func (b *xmlBuilder) nameValues(elem string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.open(elem)
		b.leaf("Name", k)
		b.leaf("Value", m[k])
		b.close(elem)
	}
}

func xmlQueueURL(b *xmlBuilder, o *queueURLOutput) { b.leaf("QueueUrl", o.QueueUrl) }

func xmlListQueues(b *xmlBuilder, o *listQueuesOutput) {
	for _, u := range o.QueueUrls {
		b.leaf("QueueUrl", u)
	}
	if o.NextToken != "" {
		b.leaf("NextToken", o.NextToken)
	}
}

func xmlAttributes(b *xmlBuilder, o *attributesOutput) { b.nameValues("Attribute", o.Attributes) }

func xmlSendFields(b *xmlBuilder, o *sendMessageOutput) {
	b.leaf("MessageId", o.MessageId)
	b.leaf("MD5OfMessageBody", o.MD5OfMessageBody)
	if o.MD5OfMessageAttributes != "" {
		b.leaf("MD5OfMessageAttributes", o.MD5OfMessageAttributes)
	}
	if o.MD5OfMessageSystemAttributes != "" {
		b.leaf("MD5OfMessageSystemAttributes", o.MD5OfMessageSystemAttributes)
	}
}

func xmlSendMessage(b *xmlBuilder, o *sendMessageOutput) { xmlSendFields(b, o) }

func xmlBatchErrors(b *xmlBuilder, failed []batchErrorEntry) {
	for _, f := range failed {
		b.open("BatchResultErrorEntry")
		b.leaf("Id", f.Id)
		b.leaf("SenderFault", strconv.FormatBool(f.SenderFault))
		b.leaf("Code", f.Code)
		b.leaf("Message", f.Message)
		b.close("BatchResultErrorEntry")
	}
}

func xmlSendMessageBatch(b *xmlBuilder, o *sendMessageBatchOutput) {
	for _, e := range o.Successful {
		b.open("SendMessageBatchResultEntry")
		b.leaf("Id", e.Id)
		xmlSendFields(b, &e.sendMessageOutput)
		b.close("SendMessageBatchResultEntry")
	}
	xmlBatchErrors(b, o.Failed)
}

func xmlBatch(entry string) func(*xmlBuilder, *batchOutput) {
	return func(b *xmlBuilder, o *batchOutput) {
		for _, e := range o.Successful {
			b.open(entry)
			b.leaf("Id", e.Id)
			b.close(entry)
		}
		xmlBatchErrors(b, o.Failed)
	}
}

func xmlReceiveMessage(b *xmlBuilder, o *receiveMessageOutput) {
	for _, m := range o.Messages {
		b.open("Message")
		b.leaf("MessageId", m.MessageId)
		b.leaf("ReceiptHandle", m.ReceiptHandle)
		b.leaf("MD5OfBody", m.MD5OfBody)
		b.leaf("Body", m.Body)
		b.nameValues("Attribute", m.Attributes)
		if m.MD5OfMessageAttributes != "" {
			b.leaf("MD5OfMessageAttributes", m.MD5OfMessageAttributes)
		}
		names := make([]string, 0, len(m.MessageAttributes))
		for n := range m.MessageAttributes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v := m.MessageAttributes[n]
			b.open("MessageAttribute")
			b.leaf("Name", n)
			b.open("Value")
			if v.StringValue != nil {
				b.leaf("StringValue", *v.StringValue)
			}
			if v.BinaryValue != nil {
				b.leaf("BinaryValue", base64.StdEncoding.EncodeToString(v.BinaryValue))
			}
			b.leaf("DataType", v.DataType)
			b.close("Value")
			b.close("MessageAttribute")
		}
		b.close("Message")
	}
}

func xmlTags(b *xmlBuilder, o *tagsOutput) {
	keys := make([]string, 0, len(o.Tags))
	for k := range o.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.open("Tag")
		b.leaf("Key", k)
		b.leaf("Value", o.Tags[k])
		b.close("Tag")
	}
}

func xmlDLQSources(b *xmlBuilder, o *listDLQSourcesOutput) {
	for _, u := range o.QueueUrls {
		b.leaf("QueueUrl", u)
	}
	if o.NextToken != "" {
		b.leaf("NextToken", o.NextToken)
	}
}
