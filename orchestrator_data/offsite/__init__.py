"""Copies off the machine: the logical dumps, the base backups and the WAL archive copied to S3-compatible
object storage, verified by checksum after upload, listed and restorable from there alone (docs/backups.md,
"Copies off the machine").

Domain core only (never imports dagster). Modules, one concern each:
    config.py             the store's settings (endpoint, bucket, prefix, region, credentials) as one object
    errors.py             OffsiteError (an operation failed) and OffsiteRefused (bad input)
    checksums.py          a local file's digests as S3 reports them (sha256, composite multipart checksum, ETag)
    store.py              the S3 client: verified upload, verified download, listing, with errors translated
    keys.py               where each local file goes in the bucket
    push.py               what to copy and copying it (manifest last), skipping what is already there
    catalogue.py          what the bucket holds, and its verification against local files or its own checksums
    fetch.py              bringing a dump or the recovery chain back from the bucket (verified, atomically)
    search_repository.py  the Elasticsearch `s3` snapshot repository built from the same settings"""
