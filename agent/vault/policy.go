package vault

import (
	"context"
	"fmt"

	"github.com/coffer-backup/coffer/shared/cpclient"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

// ErrNoPolicy: the vault has not assigned this machine a policy yet.
var ErrNoPolicy = cpclient.ErrNoPolicy

// Policy is the machine's policy: the document the vault serves and its
// rules, decoded.
type Policy struct {
	Doc wire.PolicyDoc
	*policy.Policy
}

// Policy fetches the machine's policy. With the ETag of the policy the
// caller holds it returns nil, nil while that is unchanged. No policy
// assigned is an error that errors.Is ErrNoPolicy. A policy this agent
// cannot decode comes back with its document (for status displays) and an
// error naming it.
func (s *Session) Policy(ctx context.Context, etag string) (*Policy, error) {
	doc, changed, err := s.Client.AgentPolicy(ctx, etag)
	if err != nil || !changed {
		return nil, err
	}
	p, err := policy.Decode(doc.Policy)
	if err != nil {
		return &Policy{Doc: doc}, fmt.Errorf("the vault's policy %s is not usable by this agent: %w", doc.Name, err)
	}
	return &Policy{Doc: doc, Policy: p}, nil
}
