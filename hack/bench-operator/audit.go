package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// auditPolicy has kube-apiserver log every write, once, when its response
// is complete, without bodies: enough to count writes by verb, resource
// and writer.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`

// auditFlags writes the policy into dir and returns the kube-apiserver
// flags that log to dir/audit.log.
func auditFlags(dir string) (flags map[string]string, logPath string, err error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, "", err
	}
	logPath = filepath.Join(dir, "audit.log")
	return map[string]string{
		"audit-policy-file": policy,
		"audit-log-path":    logPath,
		"audit-log-format":  "json",
		// One file for the whole run: no rotation to lose events to.
		"audit-log-maxsize": "0",
	}, logPath, nil
}

// writer names who sent an audited request.
type writer string

const (
	writerOperator    writer = "operator"
	writerCertManager writer = "cert-manager"
	writerAS          writer = "authorization server"
	writerOther       writer = "other"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the count needs.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	User      struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// writerOf tells the operator (the certbound binary with the admin
// identity) from the authorization-server pods (the same binary with a
// ServiceAccount's identity), cert-manager (in the bench process, with
// its controllers' user agents) and the bench itself.
func writerOf(e auditEvent) writer {
	switch {
	case strings.HasPrefix(e.User.Username, "system:serviceaccount:"):
		return writerAS
	case strings.HasPrefix(e.UserAgent, "certbound"):
		return writerOperator
	case strings.Contains(e.UserAgent, "cert-manager"):
		return writerCertManager
	}
	return writerOther
}

// writeKey is one row of the breakdown: verb, resource[/subresource] and
// whether the API server refused the write (conflict, invalid...).
type writeKey struct {
	Verb     string
	Resource string
	Refused  bool
}

func (k writeKey) String() string {
	s := k.Verb + " " + k.Resource
	if k.Refused {
		s += " (refused)"
	}
	return s
}

// auditCounts are the writes of one measured window.
type auditCounts struct {
	operator    map[writeKey]int
	certManager int
}

// countWrites reads the audit log from offset and counts the writes of
// each writer; the operator's by verb and resource.
func countWrites(path string, offset int64) (auditCounts, error) {
	counts := auditCounts{operator: map[writeKey]int{}}
	f, err := os.Open(path)
	if err != nil {
		return counts, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return counts, err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return counts, fmt.Errorf("audit log %s: %w", path, err)
		}
		if e.Stage != "ResponseComplete" || e.ObjectRef == nil {
			continue
		}
		switch writerOf(e) {
		case writerOperator:
			key := writeKey{Verb: e.Verb, Resource: e.ObjectRef.Resource}
			if e.ObjectRef.Subresource != "" {
				key.Resource += "/" + e.ObjectRef.Subresource
			}
			key.Refused = e.ResponseStatus != nil && e.ResponseStatus.Code >= 300
			counts.operator[key]++
		case writerCertManager:
			counts.certManager++
		}
	}
	return counts, sc.Err()
}

// fileSize is where the next audit event will be written.
func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
