package s3event

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Samples follow the formats documented in the Amazon S3 User Guide
// ("Event message structure", "Using EventBridge") and the SNS developer
// guide (HTTP/S notification JSON format).
const direct = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
"eventTime":"2026-11-23T18:00:00.123Z","eventName":"ObjectCreated:Put",
"userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.9"},
"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"herald-uploads",
"bucket":{"name":"herald","ownerIdentity":{"principalId":"A3NL1KOZZKExample"},"arn":"arn:aws:s3:::herald"},
"object":{"key":"uploads/demo/ch_AbCdEfGhIjKlMnOpQrStUv/job1/my+holiday+photo%C3%A9%2B1.jpg","size":1024,
"eTag":"d41d8cd98f00b204e9800998ecf8427e","versionId":"096fKKXTRTtl3on89fVO.nfljtsv6qko","sequencer":"0055AED6DCD90281E5"}}},
{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-23T18:00:01Z",
"eventName":"ObjectRemoved:Delete","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"herald"},
"object":{"key":"uploads/demo/x/job2/a.png","sequencer":"0055AED6DCD90281E6"}}}]}`

const testEvent = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-23T18:00:00.000Z",
"Bucket":"herald","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`

const eventBridge = `{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
"source":"aws.s3","account":"111122223333","time":"2026-11-23T18:00:02Z","region":"ca-central-1",
"resources":["arn:aws:s3:::herald"],"detail":{"version":"0","bucket":{"name":"herald"},
"object":{"key":"uploads/demo/ch/job3/my holiday+photo%20.jpg","size":5,"etag":"b1946ac92492d2347c6235b4d2611184",
"version-id":"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e","sequencer":"00617F08299329D189"},
"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}`

const eventBridgeDeleted = `{"version":"0","id":"2ee9cc15-d022-99ea-1fb8-1b1bac4850f9","detail-type":"Object Deleted",
"source":"aws.s3","account":"111122223333","time":"2026-11-23T18:00:03Z","region":"ca-central-1",
"resources":["arn:aws:s3:::herald"],"detail":{"version":"0","bucket":{"name":"herald"},
"object":{"key":"uploads/a.png","etag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"00617F0F3B4C8F2C69"},
"request-id":"0BH729840619AG5K","requester":"123456789012","source-ip-address":"1.2.3.4",
"reason":"DeleteObject","deletion-type":"Delete Marker Created"}}`

// sns wraps an inner document the way SNS delivers it to SQS without raw
// message delivery.
func sns(inner string) string {
	msg, _ := json.Marshal(inner)
	return `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
"TopicArn":"arn:aws:sns:us-east-1:123456789012:herald-s3","Subject":"Amazon S3 Notification",
"Message":` + string(msg) + `,"Timestamp":"2026-11-23T18:00:00.500Z","SignatureVersion":"1",
"Signature":"EXAMPLEpH+..","SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
"UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}`
}

func TestParse(t *testing.T) {
	created := Object{
		Bucket: "herald", Key: "uploads/demo/ch_AbCdEfGhIjKlMnOpQrStUv/job1/my holiday photoé+1.jpg",
		Size: 1024, ETag: "d41d8cd98f00b204e9800998ecf8427e", VersionID: "096fKKXTRTtl3on89fVO.nfljtsv6qko",
		Sequencer: "0055AED6DCD90281E5", EventName: "ObjectCreated:Put",
		Time: time.Date(2026, 11, 23, 18, 0, 0, 123e6, time.UTC), Created: true,
	}
	removed := Object{
		Bucket: "herald", Key: "uploads/demo/x/job2/a.png", Sequencer: "0055AED6DCD90281E6",
		EventName: "ObjectRemoved:Delete", Time: time.Date(2026, 11, 23, 18, 0, 1, 0, time.UTC),
	}
	eb := Object{
		Bucket: "herald", Key: "uploads/demo/ch/job3/my holiday+photo%20.jpg", Size: 5,
		ETag: "b1946ac92492d2347c6235b4d2611184", VersionID: "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
		Sequencer: "00617F08299329D189", EventName: "ObjectCreated:Put",
		Time: time.Date(2026, 11, 23, 18, 0, 2, 0, time.UTC), Created: true,
	}
	ebDel := Object{
		Bucket: "herald", Key: "uploads/a.png", ETag: "d41d8cd98f00b204e9800998ecf8427e",
		Sequencer: "00617F0F3B4C8F2C69", EventName: "ObjectRemoved:DeleteMarkerCreated",
		Time: time.Date(2026, 11, 23, 18, 0, 3, 0, time.UTC),
	}
	tests := []struct {
		name    string
		body    string
		want    []Object
		wantErr error
	}{
		{"direct, two records", direct, []Object{created, removed}, nil},
		{"sns wrapped", sns(direct), []Object{created, removed}, nil},
		{"sns raw delivery", direct, []Object{created, removed}, nil},
		{"eventbridge created", eventBridge, []Object{eb}, nil},
		{"eventbridge deleted", eventBridgeDeleted, []Object{ebDel}, nil},
		{"sns wrapped eventbridge", sns(eventBridge), []Object{eb}, nil},
		{"test event", testEvent, nil, ErrTestEvent},
		{"sns wrapped test event", sns(testEvent), nil, ErrTestEvent},
		{"leading whitespace", "\n  " + direct, []Object{created, removed}, nil},
		{"empty", "", nil, ErrMalformed},
		{"not json", "hello", nil, ErrMalformed},
		{"json array", `[{"Records":[]}]`, nil, ErrMalformed},
		{"truncated", direct[:100], nil, ErrMalformed},
		{"unknown shape", `{"foo":1}`, nil, ErrMalformed},
		{"empty records", `{"Records":[]}`, nil, ErrMalformed},
		{"records not array", `{"Records":{}}`, nil, ErrMalformed},
		{"no s3", `{"Records":[{"eventName":"ObjectCreated:Put"}]}`, nil, ErrMalformed},
		{"no key", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`, nil, ErrMalformed},
		{"no bucket", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"object":{"key":"k"}}}]}`, nil, ErrMalformed},
		{"bad escape", `{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`, nil, ErrMalformed},
		{"bad time", `{"Records":[{"eventName":"ObjectCreated:Put","eventTime":"yesterday","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`, nil, ErrMalformed},
		{"wrong source", `{"Records":[{"eventSource":"aws:sqs","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`, nil, ErrMalformed},
		{"sns subscription confirmation", `{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe"}`, nil, ErrMalformed},
		{"sns without message", `{"Type":"Notification"}`, nil, ErrMalformed},
		{"sns message not json", sns("plain text"), nil, ErrMalformed},
		{"sns in sns", sns(sns(direct)), nil, ErrMalformed},
		{"eventbridge other source", strings.Replace(eventBridge, `"aws.s3"`, `"aws.ec2"`, 1), nil, ErrMalformed},
		{"eventbridge no key", `{"version":"0","source":"aws.s3","detail-type":"Object Created","detail":{"bucket":{"name":"b"},"object":{}}}`, nil, ErrMalformed},
		{"too big", `{"Records":[` + strings.Repeat(" ", maxBody) + `]}`, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Parse() error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrorNamesProblem(t *testing.T) {
	_, err := Parse([]byte(`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}},{"eventName":"x","s3":{"bucket":{"name":"b"},"object":{}}}]}`))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	if got, want := err.Error(), "Records[1]: no s3.object.key"; !strings.Contains(got, want) {
		t.Errorf("err = %q, want it to mention %q", got, want)
	}
	if errors.Is(err, ErrTestEvent) {
		t.Errorf("malformed error also matches ErrTestEvent")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		direct, sns(direct), eventBridge, eventBridgeDeleted, sns(eventBridge), testEvent, sns(testEvent),
		"", "{}", `{"Records":[]}`, `{"Type":"Notification","Message":"{}"}`,
		`{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a+b%2"}}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		objs, err := Parse(body)
		if err != nil {
			if objs != nil {
				t.Fatalf("Parse returned objects and error %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTestEvent) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrTestEvent", err)
			}
			return
		}
		if len(objs) == 0 {
			t.Fatal("no error and no objects")
		}
		for _, o := range objs {
			if o.Bucket == "" || o.Key == "" || o.EventName == "" || o.Size < 0 {
				t.Fatalf("invalid object %+v", o)
			}
		}
	})
}
