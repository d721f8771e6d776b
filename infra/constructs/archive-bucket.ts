import { Annotations, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { ARCHIVE_FOLDERS } from '../../lambda/shared/contract.ts';
import type { Settings } from '../settings.ts';

/** How long server access logs of the archive bucket are kept. */
const ACCESS_LOG_RETENTION = Duration.days(365);
/** Multipart uploads a run left unfinished (a timeout, a crash) are aborted by S3 after this long. */
const INCOMPLETE_UPLOAD_EXPIRATION = Duration.days(7);
/** Fan-out: queued markers are deleted by a lifecycle rule after this long. */
const QUEUED_MARKER_EXPIRATION = Duration.days(1);
/**
 * Pending-DELETE markers (a 202 not yet seen done) are deleted after this long: each run confirms
 * the ones it can, and a line still not gone after a month needs a person, not a marker.
 */
const PENDING_MARKER_EXPIRATION = Duration.days(30);
/** A dry run's whole plan (written when its reply holds only the first lines) is read soon after, or never. */
const PLAN_EXPIRATION = Duration.days(30);

/**
 * The archive bucket (id `ArchiveBucket`): the existing one named by `bucketName`, or a new one,
 * versioned, private, TLS only, with server access logs (`AccessLogsBucket`), the lifecycle rules of
 * {@link archiveLifecycleRules} and optional Object Lock. A created bucket is retained: deleting
 * the stack never deletes archived lines. An existing bucket's rules are its owner's: in fan-out
 * mode a warning says which one to add.
 */
export function createArchiveBucket(scope: Construct, settings: Settings): s3.IBucket {
  if (settings.bucketName !== undefined) {
    if (settings.fanout !== undefined) {
      Annotations.of(scope).addWarningV2(
        'tokens-housekeeper:queuedMarkersLifecycle',
        `Fan-out into an existing bucket: add a lifecycle rule expiring "${settings.archivePrefix}${ARCHIVE_FOLDERS.queued}" ` +
          `after ${QUEUED_MARKER_EXPIRATION.toHumanString()} (and its noncurrent versions) yourself; the stack cannot.`,
      );
    }
    const { archiveEncryption } = settings;
    return s3.Bucket.fromBucketAttributes(scope, 'ArchiveBucket', {
      bucketName: settings.bucketName,
      // The key the existing bucket encrypts with: the functions are granted its use.
      ...(archiveEncryption.kind === 'kms' && archiveEncryption.keyArn !== undefined
        ? { encryptionKey: kms.Key.fromKeyArn(scope, 'ArchiveKey', archiveEncryption.keyArn) }
        : {}),
    });
  }
  const accessLogs = new s3.Bucket(scope, 'AccessLogsBucket', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [{ id: 'expire-access-logs', expiration: ACCESS_LOG_RETENTION }],
    removalPolicy: RemovalPolicy.RETAIN,
  });

  return new s3.Bucket(scope, 'ArchiveBucket', {
    versioned: true,
    ...archiveBucketEncryption(scope, settings),
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    serverAccessLogsBucket: accessLogs,
    serverAccessLogsPrefix: 'archive-bucket/',
    lifecycleRules: archiveLifecycleRules(settings),
    ...(settings.objectLockRetentionDays === undefined
      ? {}
      : {
          objectLockEnabled: true,
          objectLockDefaultRetention: s3.ObjectLockRetention.governance(
            Duration.days(settings.objectLockRetentionDays),
          ),
        }),
    // The archive outlives the stack: deleting the stack never deletes archived lines.
    removalPolicy: RemovalPolicy.RETAIN,
    autoDeleteObjects: false,
  });
}

/**
 * S3-managed keys by default; SSE-KMS with S3 Bucket Keys (one data key per bucket and period,
 * not per object: fewer KMS requests) with the named key, or one the stack creates with yearly
 * rotation, retained with the archive.
 */
function archiveBucketEncryption(
  scope: Construct,
  settings: Settings,
): Pick<s3.BucketProps, 'encryption' | 'encryptionKey' | 'bucketKeyEnabled'> {
  const { archiveEncryption } = settings;
  if (archiveEncryption.kind === 's3') return { encryption: s3.BucketEncryption.S3_MANAGED };
  const encryptionKey =
    archiveEncryption.keyArn === undefined
      ? new kms.Key(scope, 'ArchiveKey', {
          description: 'tokens-housekeeper: encrypts the archive bucket',
          enableKeyRotation: true,
          removalPolicy: RemovalPolicy.RETAIN,
        })
      : kms.Key.fromKeyArn(scope, 'ArchiveKey', archiveEncryption.keyArn);
  return { encryption: s3.BucketEncryption.KMS, encryptionKey, bucketKeyEnabled: true };
}

/**
 * What S3 cleans up on its own: unfinished multipart uploads, pending-DELETE markers, dry-run plans, in fan-out
 * mode the queued markers, and, when asked, the move of the archive to Glacier Instant Retrieval.
 */
function archiveLifecycleRules(settings: Settings): s3.LifecycleRule[] {
  const rules: s3.LifecycleRule[] = [
    {
      id: 'abort-incomplete-multipart-uploads',
      abortIncompleteMultipartUploadAfter: INCOMPLETE_UPLOAD_EXPIRATION,
    },
    {
      id: 'expire-pending-markers',
      prefix: `${settings.archivePrefix}${ARCHIVE_FOLDERS.pending}`,
      expiration: PENDING_MARKER_EXPIRATION,
      noncurrentVersionExpiration: PENDING_MARKER_EXPIRATION,
    },
    {
      id: 'expire-dry-run-plans',
      prefix: `${settings.archivePrefix}${ARCHIVE_FOLDERS.plans}`,
      expiration: PLAN_EXPIRATION,
      noncurrentVersionExpiration: PLAN_EXPIRATION,
    },
  ];
  if (settings.fanout !== undefined) {
    // The planner's markers matter for a few hours; the function cannot delete them, S3 does.
    const prefix = `${settings.archivePrefix}${ARCHIVE_FOLDERS.queued}`;
    rules.push(
      {
        id: 'expire-queued-markers',
        prefix,
        expiration: QUEUED_MARKER_EXPIRATION,
        noncurrentVersionExpiration: QUEUED_MARKER_EXPIRATION,
      },
      // A separate rule: S3 does not take this action together with an expiration in days.
      { id: 'remove-queued-marker-delete-markers', prefix, expiredObjectDeleteMarker: true },
    );
  }
  if (settings.archiveTransitionDays !== undefined) {
    rules.push({
      id: 'archive-transition',
      prefix: settings.archivePrefix,
      transitions: [
        {
          storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
          transitionAfter: Duration.days(settings.archiveTransitionDays),
        },
      ],
    });
  }
  return rules;
}
