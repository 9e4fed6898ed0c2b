package sqs

import "testing"

func strp(s string) *string { return &s }

// Vectors published with independent SQS client implementations, checked
// against AWS.
func TestMD5OfAttributes(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string]AttributeValue
		want  string
	}{
		{"one string", map[string]AttributeValue{"SellerName": {DataType: "String", StringValue: strp("Example Store")}}, "cd28f3b68aeee4b2eac9c66f2f694b58"},
		{"one number", map[string]AttributeValue{"timestamp": {DataType: "Number", StringValue: strp("1493147359900")}}, "235c5c510d26fb653d073faed50ae77c"},
		{"sorted names", map[string]AttributeValue{
			"ordinal":  {DataType: "Number", StringValue: strp("1")},
			"category": {DataType: "String", StringValue: strp("test")},
		}, "d21ae90c49061e927f57df5f5d72be1f"},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := md5OfAttributes(tt.attrs); got != tt.want {
				t.Errorf("md5OfAttributes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	h := encodeReceipt(7, 42, 0xdeadbeef)
	qid, seq, nonce, ok := decodeReceipt(h)
	if !ok || qid != 7 || seq != 42 || nonce != 0xdeadbeef {
		t.Fatalf("decodeReceipt(%q) = %d %d %x %v", h, qid, seq, nonce, ok)
	}
	for _, bad := range []string{"", "x", h + "A", "AAAA"} {
		if _, _, _, ok := decodeReceipt(bad); ok {
			t.Errorf("decodeReceipt(%q) accepted", bad)
		}
	}
}
