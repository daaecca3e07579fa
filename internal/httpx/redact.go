package httpx

import (
	"net/url"
	"strings"
)

// sensitiveParams are query parameters that carry credentials (Swift temp
// URLs, S3 presigned URLs, registry tokens).
var sensitiveParams = []string{"temp_url_sig", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "token", "access_token", "password"}

// Redact removes userinfo and credential query parameters from a URL string.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable url]"
	}
	if u.User != nil {
		u.User = url.User("[redacted]")
	}
	q := u.Query()
	changed := false
	for k := range q {
		for _, s := range sensitiveParams {
			if strings.EqualFold(k, s) {
				q.Set(k, "redacted")
				changed = true
			}
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}
