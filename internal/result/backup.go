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
	Seconds float64  `json:"seconds"`
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
