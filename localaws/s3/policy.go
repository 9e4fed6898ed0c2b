package s3

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadPolicy marks a POST policy that cannot be parsed.
var ErrBadPolicy = errors.New("s3: malformed POST policy")

// PostPolicy is a parsed browser POST policy document.
type PostPolicy struct {
	Expiration time.Time
	Conditions []PolicyCondition
}

// PolicyCondition is one policy condition. Field is lower case without '$'.
type PolicyCondition struct {
	Op       string // "eq", "starts-with" or "content-length-range"
	Field    string
	Value    string
	Min, Max int64
}

// ParsePostPolicy decodes a base64 policy document: {"expiration": ISO8601,
// "conditions": [{"field": "value"} | ["eq"|"starts-with", "$field", "v"]
// | ["content-length-range", min, max]]}.
func ParsePostPolicy(b64 string) (*PostPolicy, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("policy is not base64: %w", ErrBadPolicy)
	}
	var doc struct {
		Expiration *string           `json:"expiration"`
		Conditions []json.RawMessage `json:"conditions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("policy JSON: %v: %w", err, ErrBadPolicy)
	}
	if doc.Expiration == nil {
		return nil, fmt.Errorf("policy has no expiration: %w", ErrBadPolicy)
	}
	p := &PostPolicy{}
	if p.Expiration, err = time.Parse(time.RFC3339Nano, *doc.Expiration); err != nil {
		return nil, fmt.Errorf("policy expiration %q: %w", *doc.Expiration, ErrBadPolicy)
	}
	for _, c := range doc.Conditions {
		cond, err := parseCondition(c)
		if err != nil {
			return nil, err
		}
		p.Conditions = append(p.Conditions, cond)
	}
	return p, nil
}

func parseCondition(raw json.RawMessage) (PolicyCondition, error) {
	var c PolicyCondition
	trimmed := strings.TrimSpace(string(raw))
	switch {
	case strings.HasPrefix(trimmed, "{"):
		var m map[string]string
		if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
			return c, fmt.Errorf("policy condition %.60s: want one string field: %w", trimmed, ErrBadPolicy)
		}
		for k, v := range m {
			c = PolicyCondition{Op: "eq", Field: strings.ToLower(strings.TrimPrefix(k, "$")), Value: v}
		}
		return c, nil
	case strings.HasPrefix(trimmed, "["):
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil || len(items) != 3 {
			return c, fmt.Errorf("policy condition %.60s: want 3 items: %w", trimmed, ErrBadPolicy)
		}
		if err := json.Unmarshal(items[0], &c.Op); err != nil {
			return c, fmt.Errorf("policy condition %.60s: operator: %w", trimmed, ErrBadPolicy)
		}
		c.Op = strings.ToLower(c.Op)
		switch c.Op {
		case "content-length-range":
			var err1, err2 error
			c.Min, err1 = policyInt(items[1])
			c.Max, err2 = policyInt(items[2])
			if err1 != nil || err2 != nil || c.Min < 0 || c.Max < c.Min {
				return c, fmt.Errorf("policy content-length-range %.60s: %w", trimmed, ErrBadPolicy)
			}
			return c, nil
		case "eq", "starts-with":
			var field string
			if json.Unmarshal(items[1], &field) != nil || !strings.HasPrefix(field, "$") || json.Unmarshal(items[2], &c.Value) != nil {
				return c, fmt.Errorf("policy condition %.60s: want [op, \"$field\", \"value\"]: %w", trimmed, ErrBadPolicy)
			}
			c.Field = strings.ToLower(field[1:])
			return c, nil
		}
		return c, fmt.Errorf("policy condition operator %q: %w", c.Op, ErrBadPolicy)
	}
	return c, fmt.Errorf("policy condition %.60s: %w", trimmed, ErrBadPolicy)
}

func policyInt(raw json.RawMessage) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		n = json.Number(s)
	}
	return strconv.ParseInt(n.String(), 10, 64)
}

// exemptFields need not appear in a policy's conditions.
func exemptField(name string) bool {
	return name == "policy" || name == "x-amz-signature" || name == "file" || strings.HasPrefix(name, "x-ignore-")
}

// Check evaluates the policy for form fields (lower-case names; "bucket"
// is the target bucket) at time now. It returns the allowed content length
// range (0, -1 when unrestricted); the length itself is checked while the
// file streams.
func (p *PostPolicy) Check(fields map[string]string, now time.Time) (minLen, maxLen int64, err error) {
	if now.After(p.Expiration) {
		return 0, 0, ErrAccessDenied.with("", "", nil, "Invalid according to Policy: Policy expired.")
	}
	minLen, maxLen = 0, -1
	covered := map[string]bool{}
	for _, c := range p.Conditions {
		if c.Op == "content-length-range" {
			minLen, maxLen = c.Min, c.Max
			continue
		}
		covered[c.Field] = true
		v := fields[c.Field]
		ok := false
		switch c.Op {
		case "eq":
			ok = v == c.Value
		case "starts-with":
			ok = strings.HasPrefix(v, c.Value)
			if c.Field == "content-type" && ok {
				// Each of a comma-separated list must match.
				for _, part := range strings.Split(v, ",") {
					ok = ok && strings.HasPrefix(strings.TrimSpace(part), c.Value)
				}
			}
		}
		if !ok {
			return 0, 0, ErrAccessDenied.with("", "", nil, fmt.Sprintf("Invalid according to Policy: Policy Condition failed: [%q, \"$%s\", %q]", c.Op, c.Field, c.Value))
		}
	}
	for name := range fields {
		if name != "bucket" && !exemptField(name) && !covered[name] {
			return 0, 0, ErrAccessDenied.with("", "", nil, fmt.Sprintf("Invalid according to Policy: Extra input fields: %s", name))
		}
	}
	return minLen, maxLen, nil
}
