package sqs

// Request and response shapes shared by both protocols. Field names are
// the AWS JSON protocol member names; the Query decoders fill the same
// structs.
type (
	createQueueInput struct {
		QueueName  string
		Attributes map[string]string
		Tags       map[string]string `json:"tags"`
	}
	queueURLOutput struct {
		QueueUrl string
	}
	getQueueURLInput struct {
		QueueName              string
		QueueOwnerAWSAccountId string
	}
	listQueuesInput struct {
		QueueNamePrefix string
		NextToken       string
		MaxResults      *int
	}
	listQueuesOutput struct {
		QueueUrls []string `json:",omitempty"`
		NextToken string   `json:",omitempty"`
	}
	queueInput struct {
		QueueUrl string
	}
	emptyOutput             struct{}
	getQueueAttributesInput struct {
		QueueUrl       string
		AttributeNames []string
	}
	attributesOutput struct {
		Attributes map[string]string `json:",omitempty"`
	}
	setQueueAttributesInput struct {
		QueueUrl   string
		Attributes map[string]string
	}
	sendMessageInput struct {
		QueueUrl                string
		MessageBody             *string
		DelaySeconds            *int32
		MessageAttributes       map[string]AttributeValue
		MessageSystemAttributes map[string]AttributeValue
		MessageDeduplicationId  string
		MessageGroupId          string
	}
	sendMessageOutput struct {
		MessageId                    string
		MD5OfMessageBody             string
		MD5OfMessageAttributes       string `json:",omitempty"`
		MD5OfMessageSystemAttributes string `json:",omitempty"`
	}
	sendBatchEntry struct {
		Id                      string
		MessageBody             *string
		DelaySeconds            *int32
		MessageAttributes       map[string]AttributeValue
		MessageSystemAttributes map[string]AttributeValue
		MessageDeduplicationId  string
		MessageGroupId          string
	}
	sendMessageBatchInput struct {
		QueueUrl string
		Entries  []sendBatchEntry
	}
	sendBatchResultEntry struct {
		Id string
		sendMessageOutput
	}
	batchErrorEntry struct {
		Id          string
		SenderFault bool
		Code        string
		Message     string `json:",omitempty"`
	}
	sendMessageBatchOutput struct {
		Successful []sendBatchResultEntry
		Failed     []batchErrorEntry
	}
	receiveMessageInput struct {
		QueueUrl                    string
		AttributeNames              []string
		MessageSystemAttributeNames []string
		MessageAttributeNames       []string
		MaxNumberOfMessages         *int
		VisibilityTimeout           *int
		WaitTimeSeconds             *int
		ReceiveRequestAttemptId     string
	}
	messageOutput struct {
		MessageId              string
		ReceiptHandle          string
		MD5OfBody              string
		Body                   string
		Attributes             map[string]string         `json:",omitempty"`
		MD5OfMessageAttributes string                    `json:",omitempty"`
		MessageAttributes      map[string]AttributeValue `json:",omitempty"`
	}
	receiveMessageOutput struct {
		Messages []messageOutput `json:",omitempty"`
	}
	deleteMessageInput struct {
		QueueUrl      string
		ReceiptHandle *string
	}
	deleteBatchEntry struct {
		Id            string
		ReceiptHandle string
	}
	deleteMessageBatchInput struct {
		QueueUrl string
		Entries  []deleteBatchEntry
	}
	batchIDEntry struct {
		Id string
	}
	batchOutput struct {
		Successful []batchIDEntry
		Failed     []batchErrorEntry
	}
	changeVisibilityInput struct {
		QueueUrl          string
		ReceiptHandle     *string
		VisibilityTimeout *int
	}
	changeVisibilityBatchEntry struct {
		Id                string
		ReceiptHandle     string
		VisibilityTimeout *int
	}
	changeVisibilityBatchInput struct {
		QueueUrl string
		Entries  []changeVisibilityBatchEntry
	}
	tagQueueInput struct {
		QueueUrl string
		Tags     map[string]string
	}
	untagQueueInput struct {
		QueueUrl string
		TagKeys  []string
	}
	tagsOutput struct {
		Tags map[string]string `json:",omitempty"`
	}
	listDLQSourcesInput struct {
		QueueUrl   string
		NextToken  string
		MaxResults *int
	}
	listDLQSourcesOutput struct {
		QueueUrls []string `json:"queueUrls"`
		NextToken string   `json:",omitempty"`
	}
)
