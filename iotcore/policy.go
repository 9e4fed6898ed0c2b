package iotcore

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/heraldgw/herald/topic"
)

// Policy is an IAM (or IoT) policy document, as much of it as Herald
// writes and checks.
type Policy struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one policy statement.
type Statement struct {
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// SessionPolicy is the inline STS session policy for one browser channel:
// connect with client id {channel}, subscribe to filters under and receive
// topics under apps/{app}/channels/{channel}/. It narrows whatever the
// browser role allows to that one channel.
func SessionPolicy(region, account, app, channel string) (*Policy, error) {
	if !topic.ValidSegment(app) || !topic.ValidSegment(channel) {
		return nil, fmt.Errorf("app %q / channel %q: not valid topic segments", app, channel)
	}
	arn := "arn:aws:iot:" + region + ":" + account + ":"
	root := "apps/" + app + "/channels/" + channel + "/*"
	return &Policy{Version: "2012-10-17", Statement: []Statement{
		{Effect: "Allow", Action: []string{"iot:Connect"}, Resource: []string{arn + "client/" + channel}},
		{Effect: "Allow", Action: []string{"iot:Subscribe"}, Resource: []string{arn + "topicfilter/" + root}},
		{Effect: "Allow", Action: []string{"iot:Receive"}, Resource: []string{arn + "topic/" + root}},
	}}, nil
}

// JSON renders the policy compactly (STS limits packed policies to 2048
// bytes).
func (p *Policy) JSON() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode policy: %w", err)
	}
	return string(b), nil
}

// Allows evaluates the policy for one action on one resource ARN the way
// IAM does for a single policy: an explicit Deny wins, otherwise any
// matching Allow allows, otherwise it is denied. Actions match case-
// insensitively; in both, '*' matches any run of characters (including
// '/') and '?' any one character.
func (p *Policy) Allows(action, resource string) bool {
	allowed := false
	for _, s := range p.Statement {
		if !anyMatch(s.Action, action, true) || !anyMatch(s.Resource, resource, false) {
			continue
		}
		switch s.Effect {
		case "Deny":
			return false
		case "Allow":
			allowed = true
		}
	}
	return allowed
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			if wildcard(strings.ToLower(p), strings.ToLower(s)) {
				return true
			}
		} else if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches s against p with IAM's '*' and '?' (iterative, with
// backtracking to the last '*', so it is linear-ish and never recursive).
func wildcard(p, s string) bool {
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
