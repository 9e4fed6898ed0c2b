package iotcore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/heraldgw/herald/tenant"
)

// DefaultExpiry is how long the browser's credentials (and its presigned
// URL) are valid; 15 minutes is the shortest STS AssumeRole allows.
const DefaultExpiry = 15 * time.Minute

// AssumeRoler is the one STS call the minter makes (*sts.Client).
type AssumeRoler interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Config configures a Minter.
type Config struct {
	// Endpoint is the account's IoT data endpoint
	// ("xxxxxxxx-ats.iot.us-east-1.amazonaws.com"). Required.
	Endpoint string
	// Region of the endpoint. Required.
	Region string
	// RoleARN is the browser session role
	// ("arn:aws:iam::123456789012:role/herald-browser"); its account is
	// used in the session policy. Required.
	RoleARN string
	// STS assumes the role. Required.
	STS AssumeRoler
	// Expiry of the credentials; default DefaultExpiry (also the minimum).
	Expiry time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Minter gives each browser session a presigned AWS IoT Core WebSocket URL
// limited to its channel.
type Minter struct {
	cfg     Config
	account string
}

// ErrMinterConfig is returned (wrapped) by NewMinter.
var ErrMinterConfig = errors.New("iotcore: bad minter config")

// NewMinter checks cfg.
func NewMinter(cfg Config) (*Minter, error) {
	parts := strings.Split(cfg.RoleARN, ":")
	switch {
	case cfg.Endpoint == "" || cfg.Region == "" || cfg.STS == nil:
		return nil, fmt.Errorf("endpoint, region and STS client are required: %w", ErrMinterConfig)
	case len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || len(parts[4]) != 12:
		return nil, fmt.Errorf("role arn %q: want arn:aws:iam::<account>:role/<name>: %w", cfg.RoleARN, ErrMinterConfig)
	}
	if cfg.Expiry < DefaultExpiry {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Minter{cfg: cfg, account: parts[4]}, nil
}

// MQTTFor assumes the browser role with the channel's session policy and
// presigns wss://{endpoint}/mqtt with the temporary credentials.
func (m *Minter) MQTTFor(ctx context.Context, s tenant.Session, _ *http.Request) (tenant.MQTTInfo, error) {
	pol, err := SessionPolicy(m.cfg.Region, m.account, s.App, s.Channel)
	if err != nil {
		return tenant.MQTTInfo{}, err
	}
	doc, err := pol.JSON()
	if err != nil {
		return tenant.MQTTInfo{}, err
	}
	out, err := m.cfg.STS.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(m.cfg.RoleARN),
		RoleSessionName: aws.String("herald-" + s.Channel),
		Policy:          aws.String(doc),
		DurationSeconds: aws.Int32(int32(m.cfg.Expiry / time.Second)),
	})
	if err != nil {
		return tenant.MQTTInfo{}, fmt.Errorf("assume browser role for channel %s: %w", s.Channel, err)
	}
	if out.Credentials == nil {
		return tenant.MQTTInfo{}, fmt.Errorf("assume browser role for channel %s: no credentials returned", s.Channel)
	}
	c := out.Credentials
	u, err := Presign(Request{
		Scheme: "wss", Host: m.cfg.Endpoint, Path: "/mqtt", Service: "iotdevicegateway", Region: m.cfg.Region,
		Time: m.cfg.Now(), Expires: m.cfg.Expiry, TokenAfterSigning: true,
	}, Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken)})
	if err != nil {
		return tenant.MQTTInfo{}, err
	}
	return tenant.MQTTInfo{URL: u, ProtocolVersion: 5}, nil
}
