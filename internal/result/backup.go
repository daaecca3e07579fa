package result

import "time"

// BackupResult is written by the backup binary's create, restore, verify
// and prune commands (and printed on stdout). It never holds secrets.
type BackupResult struct {
	Header
	// Operation is create, restore, verify or prune.
	Operation string `json:"operation"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix,omitempty"`
	// Backup is the backup created, verified or restored.
	Backup *BackupRef `json:"backup,omitempty"`
	// Restored lists the databases swapped in by a restore ("mysql app").
	Restored []string `json:"restored,omitempty"`
	// Unchanged lists the databases a restore left alone because they
	// already held the backup.
	Unchanged []string `json:"unchanged,omitempty"`
	// Deleted lists the backups a prune removed (or would, with DryRun).
	Deleted []string `json:"deleted,omitempty"`
	DryRun  bool     `json:"dryRun,omitempty"`
	// Freeze is what freeze or unfreeze found and did at the site.
	Freeze *BackupFreeze `json:"freeze,omitempty"`
	// Done lists the steps a freeze or unfreeze changed something with
	// (empty: the site was already as asked).
	Done []string `json:"done,omitempty"`
	// Verified: the backup was downloaded and checked after it was written
	// (create --verify).
	Verified bool `json:"verified,omitempty"`
	// Skipped says why a create made no backup (create --skip-frozen at a
	// frozen site); Backup is then absent.
	Skipped string  `json:"skipped,omitempty"`
	Seconds float64 `json:"seconds"`
}

// BackupFreeze is the freeze of a site's databases (backup freeze): in a
// freeze's result, and in a backup made while its site was frozen.
type BackupFreeze struct {
	Site string `json:"site"`
	// State is freezing (interrupted), frozen, unfreezing (interrupted)
	// or unfrozen.
	State    string    `json:"state"`
	FrozenAt time.Time `json:"frozenAt,omitzero"`
	// LastWriteAt is the MySQL server's clock when read_only took effect:
	// no write of an application (non-admin) user was accepted after it.
	LastWriteAt time.Time `json:"lastWriteAt,omitzero"`
	// GTID is the server's binlog GTID position then (when it logs one).
	GTID string `json:"gtid,omitempty"`
	// Frozen says what holds writes; NotFrozen what does not, and why.
	Frozen    []string `json:"frozen,omitempty"`
	NotFrozen []string `json:"notFrozen,omitempty"`
	// WriteRefused: a test write as a non-admin user was refused.
	WriteRefused       bool `json:"writeRefused"`
	KilledTransactions int  `json:"killedTransactions,omitempty"`
}

// ResultKind implements Document.
func (r *BackupResult) ResultKind() string { return "BackupResult" }

// BackupRef summarises one backup from its manifest.
type BackupRef struct {
	ID          string       `json:"id"`
	Site        string       `json:"site"`
	Started     time.Time    `json:"started"`
	Finished    time.Time    `json:"finished"`
	Compression string       `json:"compression"`
	Encryption  string       `json:"encryption,omitempty"`
	Dumps       []BackupDump `json:"dumps"`
	// Freeze is the site's freeze, for a backup made while it was frozen.
	Freeze *BackupFreeze `json:"freeze,omitempty"`
	// DataLossWindowSeconds is how long before the backup's start writes
	// were still accepted (0: the freeze held from before the start to the
	// end); absent when the site was not frozen at the backup's end.
	DataLossWindowSeconds *float64 `json:"dataLossWindowSeconds,omitempty"`
}

// BackupDump is one database's dump in a backup.
type BackupDump struct {
	Kind      string `json:"kind"`
	Database  string `json:"database"`
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	RawSize   int64  `json:"rawSize"`
	RawSHA256 string `json:"rawSha256"`
}
