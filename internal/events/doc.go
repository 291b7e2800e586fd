// Package events decodes and authenticates what Twilio sends to the operator's
// webhook server: conference status callbacks (form-encoded), TaskRouter events
// delivered by Event Streams (CloudEvents JSON, one object or a batch) and by a
// workspace's legacy EventCallbackUrl (form-encoded), plus the
// X-Twilio-Signature check that must pass before any of them is believed.
//
// The package is pure: no HTTP server, no clock, no I/O. The webhook server
// reads the request, calls VerifySignature with the configured public URL,
// then one of the Parse functions, and uses Dedup to drop redelivered events.
//
// Every parse error wraps ErrMalformed, so a caller can tell "Twilio sent
// something this package rejects" from its own failures. Form values are read
// with url.Values.Get (the first value of a key) because the signature covers
// only the first value of each key (twilio-go's RequestValidator semantics): a
// second value could have been appended by anyone.
package events
