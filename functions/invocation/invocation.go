// Package invocation is the Azure Functions custom-handler protocol for
// non-HTTP triggers: the host POSTs {Data, Metadata} to /<FunctionName> and
// expects {Outputs, Logs, ReturnValue} back. A non-2xx answer fails the
// invocation (and, for Service Bus, abandons the message so it is retried).
//
// Trigger payloads are decoded strictly and with size limits: they are
// bytes from outside the process.
package invocation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// MaxRequestBytes bounds an invocation body. Service Bus messages are at
// most 256 KiB (standard) or 100 MiB (premium); alerts are small.
const MaxRequestBytes = 4 << 20

// Request is what the host sends for one invocation. Data and Metadata are
// keyed by binding name.
type Request struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// Response is what the handler answers.
type Response struct {
	Outputs     map[string]any `json:"Outputs,omitempty"`
	Logs        []string       `json:"Logs,omitempty"`
	ReturnValue any            `json:"ReturnValue,omitempty"`
}

// ErrBadPayload marks a body that is not a valid invocation.
var ErrBadPayload = errors.New("invalid invocation payload")

// Decode reads one invocation body.
func Decode(r io.Reader) (*Request, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read invocation: %w", err)
	}
	if len(b) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: body larger than %d bytes", ErrBadPayload, MaxRequestBytes)
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadPayload)
	}
	if req.Data == nil {
		return nil, fmt.Errorf("%w: no Data", ErrBadPayload)
	}
	return &req, nil
}

// Timer is a timer trigger's binding value.
type Timer struct {
	Schedule       json.RawMessage `json:"Schedule"`
	ScheduleStatus *struct {
		Last        time.Time `json:"Last"`
		Next        time.Time `json:"Next"`
		LastUpdated time.Time `json:"LastUpdated"`
	} `json:"ScheduleStatus"`
	IsPastDue bool `json:"IsPastDue"`
}

// Timer decodes the timer binding called name.
func (r *Request) Timer(name string) (*Timer, error) {
	raw, ok := r.Data[name]
	if !ok {
		return nil, fmt.Errorf("%w: no binding %q in Data", ErrBadPayload, name)
	}
	var t Timer
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("%w: timer %q: %v", ErrBadPayload, name, err)
	}
	return &t, nil
}

// Message decodes a string-typed trigger binding (a Service Bus message
// body). The host encodes the body as a JSON string and then encodes that
// again, so the binding's value is a JSON string whose content is another
// JSON string holding the body; both layers are removed. A body that is
// already JSON (an object, a number) is accepted as is.
func (r *Request) Message(name string) ([]byte, error) {
	raw, ok := r.Data[name]
	if !ok {
		return nil, fmt.Errorf("%w: no binding %q in Data", ErrBadPayload, name)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		s, err := unwrapString(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: message %q: %v", ErrBadPayload, name, err)
		}
		return []byte(s), nil
	}
	if len(raw) == 0 || !json.Valid(raw) {
		return nil, fmt.Errorf("%w: message %q is neither a JSON string nor JSON", ErrBadPayload, name)
	}
	return raw, nil
}

// MetadataString reads a string metadata value such as MessageId or
// DeliveryCount (which the host may send as a number).
func (r *Request) MetadataString(key string) string {
	raw, ok := r.Metadata[key]
	if !ok {
		return ""
	}
	if s, err := unwrapString(raw); err == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// unwrapString decodes a JSON string and, when its content is itself a
// JSON string (the host's second encoding), that one too.
func unwrapString(raw []byte) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	var inner string
	if strings.HasPrefix(s, `"`) && json.Unmarshal([]byte(s), &inner) == nil {
		return inner, nil
	}
	return s, nil
}
