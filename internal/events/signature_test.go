package events

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// Vectors from twilio-go's client/request_validator_test.go (twilio_report §1.6).
const (
	vectorToken    = "12345"
	vectorURL      = "https://mycompany.com/myapp.php?foo=1&bar=2"
	vectorFormSig  = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	vectorBodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	vectorJSONSig  = "a9nBmqA0ju/hNViExpshrM61xv4="
	vectorJSONBody = `{"property": "value", "boolean": true}`
	formContent    = "application/x-www-form-urlencoded"
	jsonContent    = "application/json"
)

func vectorParams() url.Values {
	return url.Values{
		"Digits":                {"1234"},
		"CallSid":               {"CA1234567890ABCDE"},
		"To":                    {"+18005551212"},
		"Caller":                {"+14158675309"},
		"From":                  {"+14158675309"},
		"ReasonConferenceEnded": {"test"},
		"Reason":                {"Participant"},
	}
}

func TestSignKnownVectors(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"form params", SignForm(vectorToken, vectorURL, vectorParams()), vectorFormSig},
		{"form params over http", SignForm(vectorToken, strings.Replace(vectorURL, "https", "http", 1), vectorParams()), "n2xBNyzSW7rfYStDtOFiFMv7qNo="},
		{"form body", SignForm(vectorToken, vectorURL, url.Values{"property": {"value"}, "boolean": {"true"}}), "NBdBDr/T/lgjI+tlgpXjKZQZs/k="},
		{"body hash URL", BodySHA256URL(vectorURL, []byte(vectorJSONBody)), vectorURL + "&bodySHA256=" + vectorBodyHash},
		{"JSON", SignJSON(vectorToken, BodySHA256URL(vectorURL, []byte(vectorJSONBody))), vectorJSONSig},
		{"JSON, URL without query", SignJSON(vectorToken, BodySHA256URL("https://mycompany.com/myapp.php", []byte(vectorJSONBody))), "y77kIzt2vzLz71DgmJGsen2scGs="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestBodySHA256URL(t *testing.T) {
	const hash = "bodySHA256=" + vectorBodyHash
	tests := []struct{ in, want string }{
		{"https://h/p", "https://h/p?" + hash},
		{"https://h/p?", "https://h/p?" + hash},
		{"https://h/p?a=1", "https://h/p?a=1&" + hash},
		{"https://h/p?a=1&", "https://h/p?a=1&" + hash},
		{"https://h/p?a=1#frag", "https://h/p?a=1&" + hash + "#frag"},
	}
	for _, tt := range tests {
		if got := BodySHA256URL(tt.in, []byte(vectorJSONBody)); got != tt.want {
			t.Errorf("BodySHA256URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	formBody := vectorParams().Encode()
	jsonURL := BodySHA256URL(vectorURL, []byte(vectorJSONBody))
	withPort := strings.Replace(vectorURL, ".com", ".com:443", 1)
	withPortJSON := BodySHA256URL(withPort, []byte(vectorJSONBody))

	tests := []struct {
		name        string
		token       string
		url         string
		contentType string
		body        string
		signature   string
		wantErr     error
	}{
		{"form vector", vectorToken, vectorURL, formContent, formBody, vectorFormSig, nil},
		{"form with charset", vectorToken, vectorURL, formContent + "; charset=utf-8", formBody, vectorFormSig, nil},
		{"form without content type", vectorToken, vectorURL, "", formBody, vectorFormSig, nil},
		{"JSON vector", vectorToken, jsonURL, jsonContent, vectorJSONBody, vectorJSONSig, nil},
		{"JSON with charset", vectorToken, jsonURL, "application/json; charset=utf-8", vectorJSONBody, vectorJSONSig, nil},
		{"cloudevents batch content type", vectorToken, jsonURL, "application/cloudevents-batch+json", vectorJSONBody, vectorJSONSig, nil},

		// Port variants: twilio-go accepts the default port either way round,
		// since Twilio's signing is inconsistent about it.
		{"signed without port, URL with :443", vectorToken, withPort, formContent, formBody, vectorFormSig, nil},
		{"signed with :443, URL without", vectorToken, vectorURL, formContent, formBody, SignForm(vectorToken, withPort, vectorParams()), nil},
		{"JSON signed without port, URL with :443", vectorToken, withPortJSON, jsonContent, vectorJSONBody, vectorJSONSig, nil},
		{"JSON signed with :443, URL without", vectorToken, jsonURL, jsonContent, vectorJSONBody, SignJSON(vectorToken, withPortJSON), nil},
		{"signed with :80 on https", vectorToken, vectorURL, formContent, formBody, SignForm(vectorToken, strings.Replace(vectorURL, ".com", ".com:80", 1), vectorParams()), ErrSignatureInvalid},
		{"other host", vectorToken, strings.Replace(vectorURL, "mycompany", "evil", 1), formContent, formBody, vectorFormSig, ErrSignatureInvalid},

		{"missing", vectorToken, vectorURL, formContent, formBody, "", ErrSignatureMissing},
		{"no token", "", vectorURL, formContent, formBody, vectorFormSig, ErrNoAuthToken},
		{"wrong token", "54321", vectorURL, formContent, formBody, vectorFormSig, ErrSignatureInvalid},
		{"garbage", vectorToken, vectorURL, formContent, formBody, "not base64 !!", ErrSignatureInvalid},
		{"params sorted by key+value (twilio-go negative vector)", vectorToken, vectorURL, formContent, formBody, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", ErrSignatureInvalid},
		{"tampered form value", vectorToken, vectorURL, formContent, strings.Replace(formBody, "Digits=1234", "Digits=1235", 1), vectorFormSig, ErrSignatureInvalid},
		{"added form param", vectorToken, vectorURL, formContent, formBody + "&Extra=1", vectorFormSig, ErrSignatureInvalid},
		{"tampered query", vectorToken, strings.Replace(vectorURL, "foo=1", "foo=2", 1), formContent, formBody, vectorFormSig, ErrSignatureInvalid},
		{"tampered JSON body", vectorToken, jsonURL, jsonContent, strings.Replace(vectorJSONBody, "true", "false", 1), vectorJSONSig, ErrSignatureInvalid},
		{"JSON body hash swapped", vectorToken, BodySHA256URL(vectorURL, []byte("{}")), jsonContent, "{}", vectorJSONSig, ErrSignatureInvalid},
		{"JSON without bodySHA256, URL signed alone", vectorToken, vectorURL, jsonContent, vectorJSONBody, SignJSON(vectorToken, vectorURL), ErrSignatureInvalid},
		{"unsupported content type", vectorToken, vectorURL, "text/plain", formBody, vectorFormSig, ErrSignatureInvalid},
		{"unparsable content type", vectorToken, vectorURL, "application/;;", formBody, vectorFormSig, ErrSignatureInvalid},
		{"unparsable form", vectorToken, vectorURL, formContent, "a=%zz", SignForm(vectorToken, vectorURL, url.Values{"a": {""}}), ErrSignatureInvalid},
		{"unparsable URL", vectorToken, "https://h/%zz", formContent, "", SignForm(vectorToken, "https://h/%zz", nil), ErrSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.token, tt.url, tt.contentType, []byte(tt.body), tt.signature)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifySignature() = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				for _, secret := range []string{tt.url, tt.signature, tt.token} {
					if secret != "" && strings.Contains(err.Error(), secret) {
						t.Errorf("error %q reveals %q", err, secret)
					}
				}
			}
		})
	}
}

// Only the first value of a repeated key is signed, so only it may be used;
// the parsers read form values with Get for that reason.
func TestVerifySignatureRepeatedKey(t *testing.T) {
	const u = "https://ops.example.com/twilio/conference"
	body := "A=1&A=2"
	if err := VerifySignature("tok", u, formContent, []byte(body), SignForm("tok", u, url.Values{"A": {"1"}})); err != nil {
		t.Errorf("first value signed: %v", err)
	}
	if err := VerifySignature("tok", u, formContent, []byte(body), SignForm("tok", u, url.Values{"A": {"2"}})); !errors.Is(err, ErrSignatureInvalid) {
		t.Errorf("second value signed: got %v, want ErrSignatureInvalid", err)
	}
}

// Round trip through the signers with realistic callbacks, as the simulator
// will use them.
func TestSignVerifyRoundTrip(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	form := conferenceForm(ParticipantLeave)
	u := "https://flex-ops.example.com:8443/twilio/default/recovery/conference?policy=main"
	if err := VerifySignature(token, u, formContent, []byte(form.Encode()), SignForm(token, u, form)); err != nil {
		t.Errorf("form: %v", err)
	}
	body := []byte(cloudEventsBatch(3))
	signedURL := BodySHA256URL("https://flex-ops.example.com/twilio/default/recovery/events", body)
	if err := VerifySignature(token, signedURL, jsonContent, body, SignJSON(token, signedURL)); err != nil {
		t.Errorf("JSON: %v", err)
	}
}
