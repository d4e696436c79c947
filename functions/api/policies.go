package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/coffer-backup/coffer/functions/registry"
	"github.com/coffer-backup/coffer/shared/policy"
	"github.com/coffer-backup/coffer/shared/wire"
)

func (s *server) listPolicies(c echo.Context) error {
	ps, err := s.Registry.Policies(c.Request().Context(), c.Param("vault"))
	if err != nil {
		return err
	}
	out := make([]wire.PolicyDoc, len(ps))
	for i, p := range ps {
		out[i] = p.Doc
	}
	return c.JSON(http.StatusOK, out)
}

func (s *server) getPolicy(c echo.Context) error {
	p, err := s.Registry.Policy(c.Request().Context(), c.Param("vault"), c.Param("policy"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", p.Doc.ETag)
	return c.JSON(http.StatusOK, p.Doc)
}

// policyBody reads the body's policy for the vault and policy named in the
// path, decoded strictly and validated against the vault's security
// features, as every route that takes a policy must.
func (s *server) policyBody(c echo.Context) (*policy.Policy, wire.Vault, string, error) {
	body, err := readBody(c)
	if err != nil {
		return nil, wire.Vault{}, "", err
	}
	p, err := policy.Decode(body)
	if err != nil {
		return nil, wire.Vault{}, "", fail(http.StatusBadRequest, wire.CodeBadRequest, "%v", err)
	}
	v, err := s.Registry.Vault(c.Request().Context(), c.Param("vault"))
	if err != nil {
		return nil, wire.Vault{}, "", err
	}
	name := c.Param("policy")
	if err := registry.CheckPolicyName(name); err != nil {
		return nil, wire.Vault{}, "", err
	}
	if err := p.Validate(v.SecurityFeatures); err != nil {
		var ve *policy.ValidationError
		if errors.As(err, &ve) {
			return nil, wire.Vault{}, "", &httpError{http.StatusUnprocessableEntity, wire.Error{Code: wire.CodeValidation,
				Message: "the policy breaks these rules: " + ve.Error(), Details: ve.Violations}}
		}
		return nil, wire.Vault{}, "", fail(http.StatusUnprocessableEntity, wire.CodeValidation, "%v", err)
	}
	return p, v, name, nil
}

func (s *server) putPolicy(c echo.Context) error {
	p, v, name, err := s.policyBody(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	done := func() {}
	old, err := s.Registry.Policy(ctx, v.ID, name)
	switch {
	case err == nil:
		if match := c.Request().Header.Get("If-Match"); match != "" && match != old.Doc.ETag {
			return fail(http.StatusPreconditionFailed, wire.CodeConflict, "the policy changed since you read it (ETag %s); read it again and reapply your change", old.Doc.ETag)
		}
		changes, err := s.policyChanges(ctx, v, name, &old.Policy, *p)
		if err != nil {
			return err
		}
		if done, err = s.guardRetention(c, v, "change policy "+name, changes); err != nil {
			return err
		}
	case errors.Is(err, registry.ErrNotFound):
		// A new policy applies to no machine until it is assigned, and
		// assigning it is guarded; only a machine still naming a deleted
		// policy of this name would follow it at once.
		changes, err := s.policyChanges(ctx, v, name, nil, *p)
		if err != nil {
			return err
		}
		if done, err = s.guardRetention(c, v, "create policy "+name, changes); err != nil {
			return err
		}
	default:
		return err
	}
	saved, err := s.Registry.PutPolicy(ctx, v.ID, name, *p)
	if err != nil {
		return err
	}
	done()
	c.Response().Header().Set("ETag", saved.Doc.ETag)
	return c.JSON(http.StatusOK, saved.Doc)
}

// deletePolicy removes a policy no machine follows. One that machines
// follow is refused: deleting it would leave them without retention rules
// (every point kept, no schedule), and assigning them another policy is
// the change the retention guard checks.
func (s *server) deletePolicy(c echo.Context) error {
	ctx := c.Request().Context()
	v, err := s.Registry.Vault(ctx, c.Param("vault"))
	if err != nil {
		return err
	}
	name := c.Param("policy")
	if _, err := s.Registry.Policy(ctx, v.ID, name); err != nil {
		return err
	}
	ms, err := s.machinesOn(ctx, v.ID, name)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		names := make([]string, 0, min(len(ms), 10))
		for _, m := range ms[:min(len(ms), 10)] {
			names = append(names, m.Name)
		}
		return fail(http.StatusConflict, wire.CodeConflict, "%d machine(s) follow policy %s (%s); assign them another policy first", len(ms), name, strings.Join(names, ", "))
	}
	if err := s.Registry.DeletePolicy(ctx, v.ID, name); err != nil {
		return err
	}
	s.Log.Info("policy deleted", "vault", v.ID, "policy", name, "by", principal(c).Name)
	return c.NoContent(http.StatusNoContent)
}
