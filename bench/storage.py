#!/usr/bin/env python3
"""The baseline client of bench/storage.sh: boto3 doing the copies Kiln does.

    storage.py gen DIR COUNT MIN_KIB MAX_KIB     COUNT files of random bytes, sizes uniform
                                                 in [MIN_KIB, MAX_KIB] KiB (fixed seed)
    storage.py startup                           import boto3 and make a client, copy nothing
    storage.py download-prefix BUCKET PREFIX DIR every object under PREFIX, THREADS at once
    storage.py upload-dir DIR BUCKET PREFIX      every file below DIR, THREADS at once
    storage.py download-file BUCKET KEY PATH     one object, boto3's TransferManager
    storage.py upload-file PATH BUCKET KEY       one file, boto3's TransferManager

Small files: one shared client, get_object / put_object from a ThreadPoolExecutor of THREADS
(default 8, Kiln's default concurrency) workers. The big file: download_file / upload_file with
boto3's default TransferConfig (multipart above 8 MiB, 8 MiB parts, 10 threads).
Endpoint and credentials come from the standard AWS variables (AWS_ENDPOINT_URL, ...).
Each copy prints "FILES BYTES SECONDS" (SECONDS: the copy alone, after import and client setup).
"""

import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

THREADS = int(os.environ.get("THREADS", "8"))


def gen(directory, count, min_kib, max_kib):
    rng = random.Random(42)
    os.makedirs(directory, exist_ok=True)
    total = 0
    for i in range(int(count)):
        size = rng.randint(int(min_kib) * 1024, int(max_kib) * 1024)
        with open(os.path.join(directory, f"f{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(size))
        total += size
    print(count, total)


def client():
    import boto3
    from botocore.config import Config

    # Enough pooled connections for every worker (the default is 10).
    return boto3.client("s3", config=Config(max_pool_connections=max(THREADS, 10)))


def download_prefix(s3, bucket, prefix, directory):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]

    def one(key):
        dest = os.path.join(directory, key[len(prefix):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        n = 0
        with open(dest, "wb") as f:
            for chunk in body.iter_chunks(256 * 1024):
                f.write(chunk)
                n += len(chunk)
        return n

    with ThreadPoolExecutor(THREADS) as pool:
        sizes = list(pool.map(one, keys))
    return len(sizes), sum(sizes)


def upload_dir(s3, directory, bucket, prefix):
    files = []
    for root, _, names in os.walk(directory):
        files += [os.path.join(root, n) for n in names]

    def one(path):
        key = prefix + os.path.relpath(path, directory).replace(os.sep, "/")
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f)
        return os.path.getsize(path)

    with ThreadPoolExecutor(THREADS) as pool:
        sizes = list(pool.map(one, files))
    return len(sizes), sum(sizes)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "gen":
        gen(*args)
        return
    s3 = client()
    if cmd == "startup":
        return
    start = time.monotonic()
    if cmd == "download-prefix":
        files, size = download_prefix(s3, *args)
    elif cmd == "upload-dir":
        files, size = upload_dir(s3, *args)
    elif cmd == "download-file":
        bucket, key, path = args
        s3.download_file(bucket, key, path)
        files, size = 1, os.path.getsize(path)
    elif cmd == "upload-file":
        path, bucket, key = args
        s3.upload_file(path, bucket, key)
        files, size = 1, os.path.getsize(path)
    else:
        sys.exit(f"unknown command {cmd}")
    print(files, size, f"{time.monotonic() - start:.3f}")


if __name__ == "__main__":
    main(sys.argv)
