"""`python -m orchestrator_data.offsite.local_server [DATA_DIR]`: for the local stack, MinIO in the
foreground as the object store the OFFSITE_* settings name (the stack itself has no object store: most
deployments point at a real bucket). It lives here, not in stack/, because it creates the bucket through
the offsite client."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator_data.stack.object_store import MinioServer


def serve(data_dir: Path) -> int:
    """For the local stack: MinIO in the foreground with the OFFSITE_* settings as its credentials and
    address (OFFSITE_ENDPOINT_URL's port on 127.0.0.1), the bucket OFFSITE_BUCKET created if missing.
    Stops on Ctrl-C or SIGTERM. Prints where it listens, never the secret."""
    import signal
    from urllib.parse import urlsplit

    from orchestrator_data.offsite.config import required
    from orchestrator_data.offsite.store import ObjectStore
    from orchestrator_data.settings import load_settings

    config = required(load_settings())
    if not (config.endpoint_url and config.access_key_id and config.secret_access_key):
        print("set OFFSITE_ENDPOINT_URL (http://127.0.0.1:<port>), OFFSITE_ACCESS_KEY_ID and "
              "OFFSITE_SECRET_ACCESS_KEY (8+ characters) for the local server", file=sys.stderr)
        return 2
    port = urlsplit(config.endpoint_url).port or 80
    server = MinioServer(data_dir, config.access_key_id, config.secret_access_key.get_secret_value(), port=port)
    server.start()
    try:
        store = ObjectStore(config)
        client = store._client
        if config.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=config.bucket)
        print(f"MinIO at {server.endpoint}, bucket {config.bucket}, data in {data_dir} (Ctrl-C stops it)")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str]) -> int:
    return serve(Path(argv[0] if argv else ".orchestrator-data/minio").expanduser().absolute())


if __name__ == "__main__":
    from orchestrator_data.errors import DataLayerError, exit_code

    try:
        sys.exit(main(sys.argv[1:]))
    except DataLayerError as exc:  # one line, as the CLI says it (MinIO not built, a bad setting)
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exit_code(exc))
