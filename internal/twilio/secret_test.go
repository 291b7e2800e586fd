package twilio

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigFromSecret(t *testing.T) {
	tests := []struct {
		name    string
		data    map[string][]byte
		want    Config
		wantErr bool
	}{
		{
			name: "auth token, trailing newline trimmed",
			data: map[string][]byte{"accountSid": []byte("AC1\n"), "authToken": []byte("tok\n")},
			want: Config{AccountSID: "AC1", AuthToken: "tok"},
		},
		{
			name: "with API key",
			data: map[string][]byte{"accountSid": []byte("AC1"), "authToken": []byte("tok"), "apiKeySid": []byte("SK1"), "apiKeySecret": []byte("sec")},
			want: Config{AccountSID: "AC1", AuthToken: "tok", APIKeySID: "SK1", APIKeySecret: "sec"},
		},
		{name: "no auth token", data: map[string][]byte{"accountSid": []byte("AC1"), "apiKeySid": []byte("SK1"), "apiKeySecret": []byte("sec")}, wantErr: true},
		{name: "key without secret", data: map[string][]byte{"accountSid": []byte("AC1"), "authToken": []byte("tok"), "apiKeySid": []byte("SK1")}, wantErr: true},
		{name: "no account", data: map[string][]byte{"authToken": []byte("tok")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromSecret(tt.data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
