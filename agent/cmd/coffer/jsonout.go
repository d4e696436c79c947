package main

import (
	"encoding/json"

	"github.com/coffer-backup/coffer/agent/repository"
)

// pointSummaryJSON is a point's summary in --json: as stored, but with its
// duration in seconds like every other duration coffer prints, where
// repository.Summary's own JSON would give nanoseconds.
type pointSummaryJSON repository.Summary

func (s pointSummaryJSON) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Files           int64   `json:"files"`
		Dirs            int64   `json:"dirs"`
		Bytes           int64   `json:"bytes"`
		BytesRead       int64   `json:"bytesRead"`
		BytesNew        int64   `json:"bytesNew"`
		BytesStored     int64   `json:"bytesStored"`
		Warnings        int64   `json:"warnings"`
		DurationSeconds float64 `json:"durationSeconds"`
	}{s.Files, s.Dirs, s.Bytes, s.BytesRead, s.BytesNew, s.BytesStored, s.Warnings, s.Duration.Seconds()})
}

// nonNil makes an empty list print as [] in --json, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
