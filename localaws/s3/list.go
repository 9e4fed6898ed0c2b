package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

type listQuery struct {
	prefix, delimiter, after string
	maxKeys                  int
}

type listPage struct {
	contents  []listEntry
	prefixes  []string
	truncated bool
	last      string // last key or common prefix returned
}

// list walks the index in key order from after, folding keys that contain
// the delimiter past the prefix into common prefixes.
func (s *store) list(bucket string, q listQuery) (listPage, error) {
	var p listPage
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bktBuckets).Get([]byte(bucket)) == nil {
			return ErrNoSuchBucket
		}
		if q.maxKeys == 0 {
			return nil
		}
		c := tx.Bucket(objectsBucketName(bucket)).Cursor()
		seek := []byte(q.prefix)
		if q.after != "" && q.after >= q.prefix {
			seek = []byte(q.after)
		}
		// After a common prefix (a continuation from one), skip all of it.
		if q.delimiter != "" && len(q.after) > len(q.prefix) && strings.HasSuffix(q.after, q.delimiter) {
			if end := prefixEnd([]byte(q.after)); end != nil {
				seek = end
			}
		}
		k, v := c.Seek(seek)
		count := 0
		for ; k != nil; k, v = c.Next() {
			key := string(k)
			if !strings.HasPrefix(key, q.prefix) {
				break
			}
			if q.after != "" && key <= q.after {
				continue
			}
			if count == q.maxKeys {
				p.truncated = true
				break
			}
			if q.delimiter != "" {
				if i := strings.Index(key[len(q.prefix):], q.delimiter); i >= 0 {
					cp := key[:len(q.prefix)+i+len(q.delimiter)]
					p.prefixes = append(p.prefixes, cp)
					p.last = cp
					count++
					// Skip every key under this common prefix.
					end := prefixEnd([]byte(cp))
					if end == nil {
						break
					}
					if k, v = c.Seek(end); k == nil {
						break
					}
					k, v = c.Prev()
					continue
				}
			}
			var m objectMeta
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			p.contents = append(p.contents, listEntry{Key: key, LastModified: s3Time(m.Modified), ETag: m.ETag, Size: m.Size, StorageClass: "STANDARD"})
			p.last = key
			count++
		}
		return nil
	})
	return p, err
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (s *Service) listObjects(w http.ResponseWriter, r *http.Request, bucket string, q url.Values) {
	maxKeys := 1000
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeError(w, r, ErrInvalidArgument.with(bucket, "", err, "Provided max-keys not an integer or within integer range"))
			return
		}
		maxKeys = min(n, 1000)
	}
	encode := func(s string) string { return s }
	if q.Get("encoding-type") == "url" {
		encode = func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/") }
	}
	lq := listQuery{prefix: q.Get("prefix"), delimiter: q.Get("delimiter"), maxKeys: maxKeys}
	v2 := q.Get("list-type") == "2"
	if v2 {
		lq.after = q.Get("start-after")
		if tok := q.Get("continuation-token"); tok != "" {
			b, err := base64.RawURLEncoding.DecodeString(tok)
			if err != nil {
				s.writeError(w, r, ErrInvalidArgument.with(bucket, "", err, "The continuation token provided is incorrect"))
				return
			}
			lq.after = string(b)
		}
	} else {
		lq.after = q.Get("marker")
	}
	page, err := s.store.list(bucket, lq)
	if err != nil {
		s.writeError(w, r, errFor(err, bucket, ""))
		return
	}
	for i := range page.contents {
		page.contents[i].Key = encode(page.contents[i].Key)
	}
	var cps []commonPrefix
	for _, p := range page.prefixes {
		cps = append(cps, commonPrefix{Prefix: encode(p)})
	}
	if v2 {
		out := listBucketResultV2{Xmlns: xmlns, Name: bucket, Prefix: encode(lq.prefix), Delimiter: encode(lq.delimiter), MaxKeys: maxKeys,
			EncodingType: q.Get("encoding-type"), KeyCount: len(page.contents) + len(cps), IsTruncated: page.truncated,
			ContinuationToken: q.Get("continuation-token"), StartAfter: encode(q.Get("start-after")), Contents: page.contents, CommonPrefixes: cps}
		if page.truncated {
			out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(page.last))
		}
		writeXML(w, http.StatusOK, out)
		return
	}
	out := listBucketResultV1{Xmlns: xmlns, Name: bucket, Prefix: encode(lq.prefix), Marker: encode(lq.after), Delimiter: encode(lq.delimiter), MaxKeys: maxKeys,
		EncodingType: q.Get("encoding-type"), IsTruncated: page.truncated, Contents: page.contents, CommonPrefixes: cps}
	if page.truncated && lq.delimiter != "" {
		out.NextMarker = encode(page.last)
	}
	writeXML(w, http.StatusOK, out)
}
