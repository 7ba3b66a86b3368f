package certbinding

import (
	"encoding/pem"
	"testing"
)

// rfc8705AppendixA is the certificate of RFC 8705 Appendix A.
const rfc8705AppendixA = `-----BEGIN CERTIFICATE-----
MIIBBjCBrAIBAjAKBggqhkjOPQQDAjAPMQ0wCwYDVQQDDARtdGxzMB4XDTE4MTAx
ODEyMzcwOVoXDTIyMDUwMjEyMzcwOVowDzENMAsGA1UEAwwEbXRsczBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABNcnyxwqV6hY8QnhxxzFQ03C7HKW9OylMbnQZjjJ
/Au08/coZwxS7LfA4vOLS9WuneIXhbGGWvsDSb0tH6IxLm8wCgYIKoZIzj0EAwID
SQAwRgIhAP0RC1E+vwJD/D1AGHGzuri+hlV/PpQEKTWUVeORWz83AiEA5x2eXZOV
bUlJSGQgjwD5vaUaKlLR50Q2DmFfQj1L+SY=
-----END CERTIFICATE-----`

func TestThumbprintOfRFC8705AppendixACertificate(t *testing.T) {
	block, _ := pem.Decode([]byte(rfc8705AppendixA))
	if block == nil {
		t.Fatal("appendix A certificate does not decode")
	}
	const want = "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"
	if got := Thumbprint(block.Bytes); got != want {
		t.Fatalf("Thumbprint = %q, want %q", got, want)
	}
	if !Matches(block.Bytes, want) {
		t.Fatal("Matches rejected the right thumbprint")
	}
}

func TestMatchesRejects(t *testing.T) {
	block, _ := pem.Decode([]byte(rfc8705AppendixA))
	other := append([]byte{}, block.Bytes...)
	other[len(other)-1] ^= 1
	for name, tc := range map[string]struct {
		der  []byte
		want string
	}{
		"a different certificate":   {other, Thumbprint(block.Bytes)},
		"an empty thumbprint":       {block.Bytes, ""},
		"no certificate":            {nil, Thumbprint(block.Bytes)},
		"a thumbprint with padding": {block.Bytes, Thumbprint(block.Bytes) + "="},
	} {
		t.Run(name, func(t *testing.T) {
			if Matches(tc.der, tc.want) {
				t.Fatal("Matches accepted a wrong binding")
			}
		})
	}
}
