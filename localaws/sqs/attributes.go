package sqs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Queue attribute names.
const (
	attrAll                   = "All"
	attrDelaySeconds          = "DelaySeconds"
	attrMaximumMessageSize    = "MaximumMessageSize"
	attrRetentionPeriod       = "MessageRetentionPeriod"
	attrWaitTimeSeconds       = "ReceiveMessageWaitTimeSeconds"
	attrVisibilityTimeout     = "VisibilityTimeout"
	attrRedrivePolicy         = "RedrivePolicy"
	attrRedriveAllowPolicy    = "RedriveAllowPolicy"
	attrPolicy                = "Policy"
	attrKmsMasterKeyID        = "KmsMasterKeyId"
	attrKmsReusePeriod        = "KmsDataKeyReusePeriodSeconds"
	attrSqsManagedSse         = "SqsManagedSseEnabled"
	attrFifoQueue             = "FifoQueue"
	attrQueueArn              = "QueueArn"
	attrApproxMessages        = "ApproximateNumberOfMessages"
	attrApproxNotVisible      = "ApproximateNumberOfMessagesNotVisible"
	attrApproxDelayed         = "ApproximateNumberOfMessagesDelayed"
	attrCreatedTimestamp      = "CreatedTimestamp"
	attrLastModifiedTimestamp = "LastModifiedTimestamp"
)

// queueSettings are the parsed attributes the service acts on.
type queueSettings struct {
	delaySec      int
	maxSize       int
	retentionSec  int
	waitSec       int
	visibilitySec int
	redrive       *redrivePolicy
}

// redrivePolicy is the RedrivePolicy attribute.
type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     int    `json:"maxReceiveCount"`
	targetName          string
}

// defaultAttributes are reported for attributes never set explicitly.
var defaultAttributes = map[string]string{
	attrDelaySeconds:       "0",
	attrMaximumMessageSize: "262144",
	attrRetentionPeriod:    "345600",
	attrWaitTimeSeconds:    "0",
	attrVisibilityTimeout:  "30",
	attrSqsManagedSse:      "false",
}

// readOnlyAttributes are computed, never set.
var readOnlyAttributes = map[string]bool{
	attrQueueArn: true, attrApproxMessages: true, attrApproxNotVisible: true,
	attrApproxDelayed: true, attrCreatedTimestamp: true, attrLastModifiedTimestamp: true,
}

func intRange(lo, hi int) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			return "", fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		return strconv.Itoa(n), nil
	}
}

func anyString(v string) (string, error) { return v, nil }

func boolString(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true":
		return "true", nil
	case "false":
		return "false", nil
	}
	return "", fmt.Errorf("must be true or false")
}

// settableAttributes validates and normalizes each attribute a client may set.
// RedrivePolicy is validated separately because it needs the queue registry.
var settableAttributes = map[string]func(string) (string, error){
	attrDelaySeconds:       intRange(0, 900),
	attrMaximumMessageSize: intRange(1024, 1048576),
	attrRetentionPeriod:    intRange(60, 1209600),
	attrWaitTimeSeconds:    intRange(0, 20),
	attrVisibilityTimeout:  intRange(0, 43200),
	attrRedrivePolicy:      anyString,
	attrRedriveAllowPolicy: anyString,
	attrPolicy:             anyString,
	attrKmsMasterKeyID:     anyString,
	attrKmsReusePeriod:     intRange(60, 86400),
	attrSqsManagedSse:      boolString,
	attrFifoQueue: func(v string) (string, error) {
		if strings.EqualFold(v, "false") {
			return "false", nil
		}
		return "", fmt.Errorf("FIFO queues are not supported by this service")
	},
}

// normalizeAttributes validates a CreateQueue/SetQueueAttributes attribute map
// and returns it normalized. RedrivePolicy is parsed by parseRedrive.
func normalizeAttributes(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	for name, v := range in {
		norm, ok := settableAttributes[name]
		if !ok {
			return nil, apiErr(ErrInvalidAttributeName, "Unknown Attribute %s.", name)
		}
		nv, err := norm(v)
		if err != nil {
			return nil, apiErr(ErrInvalidAttributeValue, "Invalid value for the parameter %s. Reason: %v.", name, err)
		}
		out[name] = nv
	}
	if v, ok := out[attrRedrivePolicy]; ok && v != "" {
		rp, err := parseRedrive(v)
		if err != nil {
			return nil, err
		}
		out[attrRedrivePolicy] = rp.String()
	}
	return out, nil
}

// parseRedrive parses a RedrivePolicy; maxReceiveCount may be a number or a
// numeric string, as AWS accepts both.
func parseRedrive(v string) (*redrivePolicy, error) {
	var raw struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	bad := func(reason string) error {
		return apiErr(ErrInvalidParameterValue, "Value %s for parameter RedrivePolicy is invalid. Reason: %s", v, reason)
	}
	dec := json.NewDecoder(strings.NewReader(v))
	if err := dec.Decode(&raw); err != nil {
		return nil, bad("Redrive policy is not a valid JSON map.")
	}
	mrc := string(bytes.Trim(raw.MaxReceiveCount, `"`))
	n, err := strconv.Atoi(mrc)
	if err != nil || n < 1 || n > 1000 {
		return nil, bad("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
	}
	parts := strings.Split(raw.DeadLetterTargetArn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || !validQueueName(parts[5]) {
		return nil, bad("Invalid value for deadLetterTargetArn.")
	}
	return &redrivePolicy{DeadLetterTargetArn: raw.DeadLetterTargetArn, MaxReceiveCount: n, targetName: parts[5]}, nil
}

func (rp *redrivePolicy) String() string {
	b, _ := json.Marshal(rp)
	return string(b)
}

// settingsFrom derives queueSettings from a normalized attribute map.
func settingsFrom(attrs map[string]string) queueSettings {
	get := func(name string) int {
		v, ok := attrs[name]
		if !ok {
			v = defaultAttributes[name]
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	s := queueSettings{
		delaySec:      get(attrDelaySeconds),
		maxSize:       get(attrMaximumMessageSize),
		retentionSec:  get(attrRetentionPeriod),
		waitSec:       get(attrWaitTimeSeconds),
		visibilitySec: get(attrVisibilityTimeout),
	}
	if v := attrs[attrRedrivePolicy]; v != "" {
		if rp, err := parseRedrive(v); err == nil {
			s.redrive = rp
		}
	}
	return s
}

// expandAttributeNames resolves a GetQueueAttributes name list ("All"
// included) to sorted known names, or fails with InvalidAttributeName.
func expandAttributeNames(names []string) ([]string, error) {
	set := map[string]bool{}
	for _, n := range names {
		switch {
		case n == attrAll:
			for k := range settableAttributes {
				set[k] = true
			}
			for k := range readOnlyAttributes {
				set[k] = true
			}
		case settableAttributes[n] != nil || readOnlyAttributes[n]:
			set[n] = true
		default:
			return nil, apiErr(ErrInvalidAttributeName, "Unknown Attribute %s.", n)
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
