package smtpsink

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var page = template.Must(template.New("mail").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Coffer local mail</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}</style>
</head><body><h1>Mail captured by the local SMTP sink</h1>
{{if not .}}<p>No mail yet.</p>{{end}}
{{range $i, $m := .}}<h2 id="m{{$i}}">{{$m.Subject}}</h2>
<table><tr><th>Received</th><td>{{$m.Received.Format "2006-01-02 15:04:05 MST"}}</td></tr>
<tr><th>From</th><td>{{$m.From}}</td></tr><tr><th>To</th><td>{{range $m.To}}{{.}} {{end}}</td></tr>
<tr><th>Secured</th><td>{{if $m.TLS}}TLS{{else}}plain{{end}}{{if $m.AuthUser}}, signed in as {{$m.AuthUser}}{{end}}</td></tr></table>
<pre>{{$m.Body}}</pre><p><a href="messages/{{$i}}.eml">raw message</a></p>{{end}}
</body></html>`))

// jsonMessage is the shape of /api/messages, for scripts.
type jsonMessage struct {
	From     string    `json:"from"`
	To       []string  `json:"to"`
	Subject  string    `json:"subject"`
	Body     string    `json:"body"`
	TLS      bool      `json:"tls"`
	AuthUser string    `json:"authUser,omitempty"`
	Received time.Time `json:"received"`
}

// Handler serves the captured mail: an HTML page at /, each raw message at
// /messages/N.eml (N from 0), and JSON at /api/messages.
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page.Execute(w, s.Messages())
	})
	mux.HandleFunc("GET /messages/{file}", func(w http.ResponseWriter, r *http.Request) {
		file := r.PathValue("file")
		n, err := strconv.Atoi(strings.TrimSuffix(file, ".eml"))
		msgs := s.Messages()
		if err != nil || n < 0 || n >= len(msgs) {
			http.Error(w, "no such message: the list at / links to each one", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "message/rfc822")
		w.Write(msgs[n].Raw)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		out := []jsonMessage{}
		for _, m := range s.Messages() {
			out = append(out, jsonMessage{m.From, m.To, m.Subject, m.Body, m.TLS, m.AuthUser, m.Received})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	return mux
}
