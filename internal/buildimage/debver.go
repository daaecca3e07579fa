package buildimage

import (
	"fmt"
	"strings"
)

// compareDebVersions orders two Debian versions ([epoch:]upstream[-revision])
// as dpkg does (deb-version(7)): <0, 0 or >0.
func compareDebVersions(a, b string) int {
	ea, ua, ra := splitDebVersion(a)
	eb, ub, rb := splitDebVersion(b)
	if ea != eb {
		if ea < eb {
			return -1
		}
		return 1
	}
	if c := verrevcmp(ua, ub); c != 0 {
		return c
	}
	return verrevcmp(ra, rb)
}

func splitDebVersion(v string) (epoch int, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		for _, c := range e {
			if c < '0' || c > '9' {
				return 0, v, ""
			}
			epoch = epoch*10 + int(c-'0')
		}
		v = rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

// debCharOrder is dpkg's weight of a non-digit character: '~' sorts before
// everything, even the end of the string; letters before other characters.
func debCharOrder(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp.
func verrevcmp(a, b string) int {
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := debCharOrder(at(a, i)), debCharOrder(at(b, j))
			if ac != bc {
				return ac - bc
			}
			i++
			j++
		}
		for at(a, i) == '0' {
			i++
		}
		for at(b, j) == '0' {
			j++
		}
		for isDigit(at(a, i)) && isDigit(at(b, j)) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if isDigit(at(a, i)) {
			return 1
		}
		if isDigit(at(b, j)) {
			return -1
		}
		if firstDiff != 0 {
			return firstDiff
		}
	}
	return 0
}

// debRelation is one alternative of a dependency: a package name with an
// optional version constraint (Op is "", "<<", "<=", "=", ">=" or ">>").
type debRelation struct {
	Name    string
	Op      string
	Version string
}

func (r debRelation) String() string {
	if r.Op == "" {
		return r.Name
	}
	return fmt.Sprintf("%s (%s %s)", r.Name, r.Op, r.Version)
}

// satisfiedBy reports whether version v meets the constraint.
func (r debRelation) satisfiedBy(v string) bool {
	if r.Op == "" {
		return true
	}
	c := compareDebVersions(v, r.Version)
	switch r.Op {
	case "<<":
		return c < 0
	case "<=":
		return c <= 0
	case "=":
		return c == 0
	case ">=":
		return c >= 0
	case ">>":
		return c > 0
	}
	return false
}

// parseRelations parses a Depends/Pre-Depends/Provides field: groups
// separated by ',', alternatives by '|'. Architecture qualifiers (perl:any,
// foo:amd64) are dropped: the lock holds one architecture and "all", and
// Multi-Arch: allowed packages satisfy ":any". Architecture restrictions
// ([amd64]) and build profiles (<!nocheck>) do not occur in binary packages'
// fields and are rejected.
func parseRelations(field string) ([][]debRelation, error) {
	var out [][]debRelation
	field = strings.TrimSpace(strings.ReplaceAll(field, "\n", " "))
	if field == "" {
		return nil, nil
	}
	for _, group := range strings.Split(field, ",") {
		var alts []debRelation
		for _, alt := range strings.Split(group, "|") {
			alt = strings.TrimSpace(alt)
			if alt == "" {
				return nil, fmt.Errorf("empty relation in %q", field)
			}
			if strings.ContainsAny(alt, "[<") && !strings.Contains(alt, "(") {
				return nil, fmt.Errorf("%q: architecture restrictions and build profiles are not supported", alt)
			}
			var r debRelation
			name, cons, hasCons := strings.Cut(alt, "(")
			r.Name = strings.TrimSpace(name)
			if n, _, ok := strings.Cut(r.Name, ":"); ok {
				r.Name = n
			}
			if hasCons {
				cons, rest, ok := strings.Cut(cons, ")")
				if !ok || strings.TrimSpace(rest) != "" {
					return nil, fmt.Errorf("%q: bad version constraint", alt)
				}
				cons = strings.TrimSpace(cons)
				for _, op := range []string{"<<", "<=", ">=", ">>", "=", "<", ">"} {
					if strings.HasPrefix(cons, op) {
						r.Op, r.Version = op, strings.TrimSpace(cons[len(op):])
						break
					}
				}
				switch r.Op { // obsolete spellings, as dpkg reads them
				case "<":
					r.Op = "<="
				case ">":
					r.Op = ">="
				}
				if r.Op == "" || r.Version == "" {
					return nil, fmt.Errorf("%q: bad version constraint", alt)
				}
			}
			if r.Name == "" || strings.ContainsAny(r.Name, " \t") {
				return nil, fmt.Errorf("%q: bad package name", alt)
			}
			alts = append(alts, r)
		}
		out = append(out, alts)
	}
	return out, nil
}
