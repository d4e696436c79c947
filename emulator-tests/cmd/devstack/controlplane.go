package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// portalLink asks the control plane for a one-time sign-in link to the
// vault portal (POST /portal/links), with the role of token.
func portalLink(ctx context.Context, base, token string) (string, time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/portal/links", nil)
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: %w", base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	var l struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if res.StatusCode != http.StatusCreated {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: %s: %s", base, res.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &l); err != nil || l.URL == "" {
		return "", time.Time{}, fmt.Errorf("ask %s for a portal sign-in link: the answer holds no link (%v): %s", base, err, body)
	}
	return l.URL, l.ExpiresAt, nil
}

// controlPlaneLog is where `devstack serve` writes the control plane's log.
func controlPlaneLog(dir string) string { return filepath.Join(dir, "coffer-functions.log") }
