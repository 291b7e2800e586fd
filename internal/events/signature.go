package events

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// Signature errors. The webhook server answers 403 to both; they are distinct
// so that logs and metrics can tell a misconfigured sender from a forged one.
var (
	// ErrSignatureMissing means the request carried no X-Twilio-Signature.
	ErrSignatureMissing = errors.New("missing X-Twilio-Signature")
	// ErrSignatureInvalid means the signature does not match the URL and body,
	// or the request cannot be checked at all (bad URL, unparsable form body,
	// JSON body whose hash the URL does not carry).
	ErrSignatureInvalid = errors.New("invalid X-Twilio-Signature")
	// ErrNoAuthToken means the caller has no auth token to check with. It is a
	// configuration problem, not a forged request: an empty HMAC key would let
	// anyone sign, so nothing is accepted.
	ErrNoAuthToken = errors.New("no auth token to check X-Twilio-Signature with")
)

// bodySHA256Param is the query parameter Twilio adds to the URL of a request
// with a JSON body: the lower-case hex SHA-256 of the body. The HMAC then
// covers the URL only, and the body is bound to it through this hash.
const bodySHA256Param = "bodySHA256"

// VerifySignature checks X-Twilio-Signature for a request Twilio made to
// publicURL: the configured public URL of the route plus the query string
// of the request as received, never a URL rebuilt from the Host header (which
// the sender controls).
//
// When the URL carries bodySHA256 (Twilio adds it to JSON requests, Event
// Streams among them) the HMAC covers the URL alone and the body must hash to
// that value. Otherwise the body must be form-encoded and the HMAC covers the
// URL followed by the form parameters sorted by key, first value of each key.
// A JSON body without bodySHA256 is refused: its content would not be covered
// by the signature, so a captured signature could be replayed with any body.
//
// The comparison is constant-time and, as in twilio-go, a URL with the
// scheme's default port is accepted with or without it. The HMAC is computed
// by twilio-go's client.RequestValidator so that this package and Twilio's
// own helper cannot disagree.
//
// The error wraps ErrSignatureMissing, ErrSignatureInvalid or ErrNoAuthToken.
// Its text never contains the URL, the signature or the token.
func VerifySignature(authToken, publicURL string, contentType string, body []byte, signature string) error {
	if signature == "" {
		return ErrSignatureMissing
	}
	if authToken == "" {
		return ErrNoAuthToken
	}
	parsed, err := url.Parse(publicURL)
	if err != nil {
		// Not %w of err: url.Error quotes the URL, which may be logged.
		return fmt.Errorf("%w: the public URL does not parse", ErrSignatureInvalid)
	}
	validator := client.NewRequestValidator(authToken)

	if wantHash := parsed.Query().Get(bodySHA256Param); wantHash != "" {
		if !validator.Validate(publicURL, map[string]string{}, signature) {
			return fmt.Errorf("%w: signature does not match the URL", ErrSignatureInvalid)
		}
		sum := sha256.Sum256(body)
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(wantHash)) != 1 {
			return fmt.Errorf("%w: body does not match %s", ErrSignatureInvalid, bodySHA256Param)
		}
		return nil
	}

	switch mediaType(contentType) {
	case "", "application/x-www-form-urlencoded":
	case "application/json":
		return fmt.Errorf("%w: JSON body without %s in the URL", ErrSignatureInvalid, bodySHA256Param)
	default:
		return fmt.Errorf("%w: unsupported content type", ErrSignatureInvalid)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return fmt.Errorf("%w: form body does not parse", ErrSignatureInvalid)
	}
	params := make(map[string]string, len(form))
	for key, values := range form {
		params[key] = values[0]
	}
	if !validator.Validate(publicURL, params, signature) {
		return fmt.Errorf("%w: signature does not match the URL and form", ErrSignatureInvalid)
	}
	return nil
}

// mediaType returns the lower-case media type of a Content-Type header, with
// structured-syntax JSON types (application/cloudevents-batch+json and the
// like) folded into application/json. An unparsable header yields itself, so
// that it lands in the "unsupported" branch rather than passing as a form.
func mediaType(contentType string) string {
	if strings.TrimSpace(contentType) == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "invalid"
	}
	if mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return "application/json"
	}
	return mt
}

// SignForm computes the X-Twilio-Signature Twilio sends with a form POST to
// rawURL: HMAC-SHA1 keyed with the auth token over the URL followed by each
// key and its first value, keys in byte order, base64-encoded. Keys without a
// value are skipped, as url.Values.Encode drops them from the body. It exists
// for the simulator and for tests.
func SignForm(authToken, rawURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for key, values := range params {
		if len(values) > 0 {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	var signed strings.Builder
	signed.WriteString(rawURL)
	for _, key := range keys {
		signed.WriteString(key)
		signed.WriteString(params[key][0])
	}
	return hmacSHA1(authToken, signed.String())
}

// SignJSON computes the X-Twilio-Signature Twilio sends with a JSON POST: the
// HMAC covers the URL alone, which must already carry bodySHA256 (see
// BodySHA256URL). It exists for the simulator and for tests.
func SignJSON(authToken, urlWithBodySHA string) string {
	return hmacSHA1(authToken, urlWithBodySHA)
}

// BodySHA256URL returns rawURL with bodySHA256=<lower-case hex SHA-256 of
// body> appended to its query, as Twilio does before signing a JSON request.
// The URL is extended as a string, never re-encoded, because the signature is
// computed over its exact bytes; a fragment, if any, stays at the end.
func BodySHA256URL(rawURL string, body []byte) string {
	base, fragment := rawURL, ""
	if i := strings.IndexByte(rawURL, '#'); i >= 0 {
		base, fragment = rawURL[:i], rawURL[i:]
	}
	sep := "?"
	if _, query, hasQuery := strings.Cut(base, "?"); hasQuery {
		sep = "&"
		if query == "" || strings.HasSuffix(query, "&") {
			sep = ""
		}
	}
	sum := sha256.Sum256(body)
	return base + sep + bodySHA256Param + "=" + hex.EncodeToString(sum[:]) + fragment
}

func hmacSHA1(key, message string) string {
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write([]byte(message)) // hash.Hash.Write never returns an error
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
