package deploy

import (
	"regexp"
	"strings"

	"github.com/slipwayci/slipway/internal/usererr"
)

// DefaultBranchPrefix is the part of a platform branch name that is dropped
// to get its namespace: platform/acme deploys into namespace acme.
const DefaultBranchPrefix = "platform/"

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	notLabelChar = regexp.MustCompile(`[^a-z0-9]+`)
)

// NamespaceFor maps a platform branch to its namespace:
//
//  1. the branch must start with branchPrefix (e.g. "platform/"), which is removed;
//  2. the rest is lower-cased and every run of characters other than a-z and
//     0-9 becomes one "-" ("Acme_Corp/EU" -> "acme-corp-eu"), with leading and
//     trailing "-" removed;
//  3. nsPrefix is put in front ("" by default, e.g. "edx-" gives "edx-acme").
//
// The result must be a DNS-1123 label of at most 63 characters, and must not
// be default, kube-system, kube-public, kube-node-lease or any kube-* name.
// Because step 2 can map two branches to one namespace, the namespace records
// its owner branch and a second branch is refused (see checkOwner).
func NamespaceFor(branch, branchPrefix, nsPrefix string) (string, error) {
	if branch == "" {
		return "", optionErrorf("Branch", "branch is empty: give the platform branch (e.g. %sacme)", branchPrefix)
	}
	rest, ok := strings.CutPrefix(branch, branchPrefix)
	if !ok {
		return "", optionErrorf("BranchPrefix", "branch %q does not start with %q: only platform branches deploy", branch, branchPrefix)
	}
	name := strings.Trim(notLabelChar.ReplaceAllString(strings.ToLower(rest), "-"), "-")
	if name == "" {
		return "", usererr.Errorf("branch %q: nothing usable after %q to name a namespace", branch, branchPrefix)
	}
	ns := nsPrefix + name
	if len(ns) > 63 {
		return "", usererr.Errorf("branch %q: namespace %q is %d characters, more than 63: use a shorter branch name or prefix", branch, ns, len(ns))
	}
	if !dns1123Label.MatchString(ns) {
		return "", optionErrorf("NamespacePrefix", "branch %q: namespace %q is not a valid DNS-1123 label (check the namespace prefix %q)", branch, ns, nsPrefix)
	}
	if ns == "default" || strings.HasPrefix(ns, "kube-") {
		return "", usererr.Errorf("branch %q maps to namespace %q, which is reserved for the cluster", branch, ns)
	}
	return ns, nil
}
