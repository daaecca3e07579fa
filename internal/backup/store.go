package backup

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/usererr"
)

// ObjectStore is the seam between the backup logic and the bucket that holds
// backups. The S3 implementation talks to any S3 endpoint (Ceph radosgw,
// versitygw, AWS).
type ObjectStore interface {
	// Put streams r into key; on any error nothing is left under key and no
	// multipart upload stays open.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens key for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns every object under prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes the keys; a key that does not exist is not an error.
	Delete(ctx context.Context, keys ...string) error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
}

// ErrNotFound is returned by Get for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// DefaultPartSize is S3's minimum part size: with two parts in flight it
// keeps an upload's buffers near 15 MiB, and 10,000 parts still allow
// 48 GiB per dump.
const DefaultPartSize = 5 << 20

// S3Config says where backups live and how to reach the endpoint.
type S3Config struct {
	Endpoint  string // e.g. https://rgw.example:8080; empty = AWS
	Region    string
	Bucket    string
	Prefix    string // key prefix, e.g. "acme/"; backups are <prefix><id>/...
	AccessKey logging.Secret
	SecretKey logging.Secret
	CAFile    string // extra CA bundle for the endpoint (PEM)
	// VirtualHost switches from path-style (radosgw's default) to
	// virtual-hosted-style addressing.
	VirtualHost bool
	// PartSize is the multipart part size (default 5 MiB); with
	// Concurrency parts in flight it bounds the upload's memory.
	PartSize    int64
	Concurrency int
	// MaxAttempts is how often one S3 request is tried (default 5).
	MaxAttempts int
	// AbortTimeout bounds the retries of aborting a failed multipart
	// upload (default 30s); what is left is aborted by the next prune.
	AbortTimeout time.Duration
}

func (c S3Config) validate(n Names) error {
	switch {
	case c.Bucket == "":
		return usererr.Errorf("%s is empty: name the bucket that holds the backups", n.of("S3.Bucket"))
	case c.AccessKey.Empty() || c.SecretKey.Empty():
		return usererr.Errorf("S3 credentials are missing: set %s and %s", n.of("S3.AccessKey"), n.of("S3.SecretKey"))
	case c.PartSize != 0 && c.PartSize < manager.MinUploadPartSize:
		return usererr.Errorf("%s %d is below S3's minimum of %d bytes", n.of("S3.PartSize"), c.PartSize, manager.MinUploadPartSize)
	case c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/"):
		return usererr.Errorf("%s %q must end in \"/\"", n.of("S3.Prefix"), c.Prefix)
	case c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://"):
		return usererr.Errorf("%s %q is not an http:// or https:// URL", n.of("S3.Endpoint"), c.Endpoint)
	}
	return nil
}

// S3Store is the ObjectStore on an S3 bucket.
type S3Store struct {
	client *s3.Client
	//lint:ignore SA1019 the project pins feature/s3/manager; transfermanager is still v0.x.
	uploader *manager.Uploader
	bucket   string
	endpoint string
	// abortTimeout bounds the clean-up of a failed upload.
	abortTimeout time.Duration
}

var _ ObjectStore = (*S3Store)(nil)

// NewS3Store builds a client for cfg. It reads no environment variables and
// no shared AWS config: everything comes from cfg.
func NewS3Store(cfg S3Config) (*S3Store, error) { return newS3Store(cfg, nil) }

// newS3Store is NewS3Store with errors naming the options as n does.
func newS3Store(cfg S3Config, n Names) (*S3Store, error) {
	if err := cfg.validate(n); err != nil {
		return nil, err
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	httpClient := awshttp.NewBuildableClient()
	if cfg.CAFile != "" {
		pool, err := httpx.CertPool(cfg.CAFile)
		if err != nil {
			return nil, usererr.Errorf("%s: %w", n.of("S3.CAFile"), err)
		}
		httpClient = httpClient.WithTransportOptions(func(tr *http.Transport) {
			if tr.TLSClientConfig == nil {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig.RootCAs = pool
		})
	}
	opts := s3.Options{
		Region:       region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(cfg.AccessKey.Reveal(), cfg.SecretKey.Reveal(), "")),
		HTTPClient:   httpClient,
		UsePathStyle: !cfg.VirtualHost,
		// radosgw and older gateways reject the newer default checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           5,
	}
	if cfg.MaxAttempts > 0 {
		opts.RetryMaxAttempts = cfg.MaxAttempts
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimRight(cfg.Endpoint, "/"))
	}
	client := s3.New(opts)
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = DefaultPartSize
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = 2
	}
	//lint:ignore SA1019 see S3Store.uploader.
	up := manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = conc
		u.LeavePartsOnError = false
	})
	abort := cfg.AbortTimeout
	if abort <= 0 {
		abort = 30 * time.Second
	}
	return &S3Store{client: client, uploader: up, bucket: cfg.Bucket, endpoint: cfg.Endpoint, abortTimeout: abort}, nil
}

// Put implements ObjectStore. The uploader aborts a failed multipart upload
// itself, but with the caller's context, which is dead when the failure was
// an interrupt; so Put aborts again with a fresh, bounded context.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader) error {
	//lint:ignore SA1019 see S3Store.uploader.
	_, err := s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
		// The uploader must not try to seek (an *os.File stdin cannot).
		Body: struct{ io.Reader }{r},
	})
	if err == nil {
		return nil
	}
	var mu manager.MultiUploadFailure
	if errors.As(err, &mu) && mu.UploadID() != "" {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.abortTimeout)
		defer cancel()
		_ = poll.Retry(actx, abortBackoff, 0, nil, func(actx context.Context) error {
			_, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(mu.UploadID()),
			})
			if aerr != nil && apiCode(aerr) == "NoSuchUpload" {
				return nil
			}
			return aerr
		})
	}
	return fmt.Errorf("uploading s3://%s/%s: %w", s.bucket, key, err)
}

// Get implements ObjectStore.
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		if c := apiCode(err); c == "NoSuchKey" || c == "NotFound" {
			return nil, fmt.Errorf("reading s3://%s/%s: %w", s.bucket, key, ErrNotFound)
		}
		return nil, fmt.Errorf("reading s3://%s/%s: %w", s.bucket, key, err)
	}
	return out.Body, nil
}

// List implements ObjectStore.
func (s *S3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			objs = append(objs, ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	return objs, nil
}

// Delete implements ObjectStore.
func (s *S3Store) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}); err != nil {
			if c := apiCode(err); c == "NoSuchKey" || c == "NotFound" {
				continue
			}
			return fmt.Errorf("deleting s3://%s/%s: %w", s.bucket, k, err)
		}
	}
	return nil
}

// Upload is an unfinished multipart upload.
type Upload struct {
	Key, ID   string
	Initiated time.Time
}

// ListUploads returns the multipart uploads still open under prefix.
func (s *S3Store) ListUploads(ctx context.Context, prefix string) ([]Upload, error) {
	var ups []Upload
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing multipart uploads in s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, u := range out.Uploads {
			ups = append(ups, Upload{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(out.IsTruncated) {
			return ups, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortUploads aborts the multipart uploads under prefix that were started
// before olderThan (leftovers of a run killed with S3 unreachable).
func (s *S3Store) AbortUploads(ctx context.Context, prefix string, olderThan time.Time) (int, error) {
	ups, err := s.ListUploads(ctx, prefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range ups {
		if !u.Initiated.IsZero() && u.Initiated.After(olderThan) {
			continue
		}
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucket), Key: aws.String(u.Key), UploadId: aws.String(u.ID)})
		if err != nil && apiCode(err) != "NoSuchUpload" {
			return n, fmt.Errorf("aborting upload %s of s3://%s/%s: %w", u.ID, s.bucket, u.Key, err)
		}
		n++
	}
	return n, nil
}

// EnsureBucket creates the bucket when it does not exist (used by tests and
// first runs against an empty gateway).
func (s *S3Store) EnsureBucket(ctx context.Context) error {
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)})
	if err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) || apiCode(err) == "BucketAlreadyOwnedByYou" || apiCode(err) == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("creating bucket %s: %w", s.bucket, err)
	}
	return nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// abortBackoff spaces the tries to abort a failed upload until AbortTimeout.
var abortBackoff = poll.Backoff{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
