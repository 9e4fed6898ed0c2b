package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runPublish sends one event to a channel through POST /v1/events: the way an
// upstream service announces its own completion events.
func runPublish(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("herald publish", flag.ContinueOnError)
	fs.SetOutput(stdout)
	var (
		_       = fs.String("url", "", "gateway base URL (env HERALD_URL; default: the serve configuration's httpAddr, http://127.0.0.1:8080)")
		key     = fs.String("api-key", "", "app API key (env HERALD_API_KEY, else HERALD_DEMO_API_KEY, else the demo app's key in <dataDir>/demo-api-key)")
		channel = fs.String("channel", "", "target channel id (required)")
		typ     = fs.String("type", "x.message", "event type: job.* or x.<name>")
		job     = fs.String("job", "", "job id (required for job.* types)")
		id      = fs.String("id", "", "event id (default: random)")
		seq     = fs.Int64("seq", 1, "sequence number within the job")
		data    = fs.String("data", "", "JSON value carried in the event's data field")
	)
	gw, err := locateGateway(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *channel == "" {
		return errors.New("--channel is required (the channel of a session, from POST /v1/sessions)")
	}
	apiKey, err := gw.apiKey(*key)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = "evt_" + randomString(20)
	}
	body := map[string]any{"v": 1, "type": *typ, "id": *id, "channel": *channel, "seq": *seq, "time": time.Now().UTC()}
	if *job != "" {
		body["jobId"] = *job
	}
	if *data != "" {
		if !json.Valid([]byte(*data)) {
			return fmt.Errorf("--data %q is not valid JSON", *data)
		}
		body["data"] = json.RawMessage(*data)
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/v1/events", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("publish to %s: %w (is the gateway running there? set --url or HERALD_URL)", gw.url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("publish: %s: %s", resp.Status, bytes.TrimSpace(out))
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return nil
}
