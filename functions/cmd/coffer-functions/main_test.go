package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealthAnswersWithVersion(t *testing.T) {
	rec := httptest.NewRecorder()
	newServer().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/health", nil))
	var body map[string]string
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["status"] != "ok" || body["version"] == "" {
		t.Fatalf("health: %d %s", rec.Code, rec.Body)
	}
}

func TestUnknownRouteIs404NotAServerError(t *testing.T) {
	rec := httptest.NewRecorder()
	newServer().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unknown route: %d, want 404", rec.Code)
	}
}
