package webhookserver

import (
	"encoding/json"
	"net/http"
)

// maxTokenLength bounds a Flex token (a JWE of a few hundred bytes).
const maxTokenLength = 8 << 10

// preflight answers a CORS preflight for the companion routes.
func preflight(w http.ResponseWriter, _ *http.Request) {
	allowCORS(w)
	w.WriteHeader(http.StatusNoContent)
}

// allowCORS lets the Flex UI (another origin) call the companion routes. Any origin may: the routes
// authenticate with a bearer token, never a cookie, so a foreign page gains nothing it did not
// already hold.
func allowCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Max-Age", "600")
	h.Set("Cache-Control", "no-store")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do about it
}
