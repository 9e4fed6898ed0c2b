package testkit

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
)

// Upload is what a browser sends to a presigned POST: multipart/form-data
// with the grant's fields first and the file last, as the "file" field.
type Upload struct {
	URL      string
	Fields   map[string]string
	Extra    [][2]string // fields after Fields, in order (a field sent twice, say)
	Filename string
	Data     []byte
	Origin   string // the Origin header; empty sends none
}

// Post sends the upload. The response's body is read, closed and
// returned; err is only for a request that could not be made.
func (u Upload) Post() (*http.Response, []byte, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range u.Fields {
		if err := mw.WriteField(k, v); err != nil {
			return nil, nil, err
		}
	}
	for _, kv := range u.Extra {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return nil, nil, err
		}
	}
	fw, err := mw.CreateFormFile("file", u.Filename)
	if err != nil {
		return nil, nil, err
	}
	if _, err := fw.Write(u.Data); err != nil {
		return nil, nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, u.URL, &buf)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if u.Origin != "" {
		req.Header.Set("Origin", u.Origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// MustPost is Post that fails the test if the request cannot be made.
func (u Upload) MustPost(t testing.TB) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := u.Post()
	if err != nil {
		t.Fatalf("POST %s: %v", u.URL, err)
	}
	return resp, body
}
