"""Benchmark: a 1 GiB dataset downloaded through a signed link, with the server's memory watched.

Serves the app with its production server (`marketplace serve`, granian) on PostgreSQL, on loopback,
and seeds through the API: an administrator, an admitted provider with a product for file delivery,
an admitted buyer. The provider uploads a generated CSV of `--size-mb` MiB (streamed from disk) and
the product lists with its dataset hosted (R1); the buyer orders, pays, takes a signed link and
downloads the file, hashing it as it arrives.
Meanwhile the resident memory of the server's processes (all of them: granian's main process and its
worker) is sampled every 10 ms.

Prints the upload and download throughput in MB/s, the server's peak memory during the download
against the 200 MB limit, and, as the reference measured in the same run, the throughput of reading
and hashing the same file straight from disk with the same chunk size: the ratio is download / disk.

    .venv/bin/python bench/delivery.py [--size-mb 1024] [--postgres postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.orders import SAMPLE, Seeder, _ok, _processes, _tree, create_admin, serving
from marketplace.cli import db_upgrade
from marketplace.config import Settings
from marketplace.demo.factories import plan_body, product_body
from tests.fixtures.database import create_postgres_database, drop_postgres_database

MEMORY_LIMIT_MB = 200
CHUNK = 1 << 20
MIB = 1 << 20


def write_dataset(path: Path, size_bytes: int) -> str:
    """A CSV of road-segment readings, `size_bytes` long; returns its sha256."""
    digest = hashlib.sha256()
    header = b"segment_id,timestamp,avg_speed_kmh,vehicle_count\n"
    block = b"".join(
        f"GY-{n % 10_000:04d},2026-10-01T{n // 60 % 24:02d}:{n % 60:02d}:00+08:00,{20 + n % 60}.5,{n % 400}\n".encode()
        for n in range(20_000)
    )
    with path.open("wb") as out:
        out.write(header)
        digest.update(header)
        written = len(header)
        while written < size_bytes:
            piece = block[: size_bytes - written]
            cut = piece.rfind(b"\n") + 1 or len(piece)  # whole lines only
            piece = piece[:cut]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


def rss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class MemoryWatch:
    """The server tree's summed resident memory, sampled on a thread until stopped."""

    def __init__(self, server_pid: int) -> None:
        self.pids = _tree(server_pid, _processes())
        self.peak = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pids))
            self.samples += 1
            self._stop.wait(0.01)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


async def upload_body(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, CHUNK):
            yield chunk


def disk_reference(path: Path) -> float:
    """MB/s of reading and hashing the file with the same chunk size, no server involved."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    for chunk in chunks(path):
        digest.update(chunk)
    return path.stat().st_size / MIB / (time.perf_counter() - started)


async def seed(base_url: str, settings: Settings) -> tuple[str, str, str, str]:
    """(provider auth, buyer auth, "product id/plan id", buyer organisation id) of a file product, described,
    priced and sampled; it lists once its dataset is uploaded (`run`)."""
    admin_email = await create_admin(settings)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        seeder = Seeder(client)
        provider, provider_org, buyer, buyer_org = await seeder.provider_and_buyer(admin_email)
        headers = {"Authorization": provider}
        body = product_body(provider_org, serial=0, delivery_modes=["file"])
        product_id = str(_ok(await client.post("/api/v1/products", json=body, headers=headers))["id"])
        plan = plan_body(1_000_000)
        plan_id = str(_ok(await client.post(f"/api/v1/products/{product_id}/plans", json=plan, headers=headers))["id"])
        _ok(
            await client.post(
                f"/api/v1/products/{product_id}/samples",
                files={"file": ("sample.csv", SAMPLE, "text/csv")},
                headers=headers,
            )
        )
        return provider, buyer, f"{product_id}/{plan_id}", buyer_org


async def run(base_url: str, server_pid: int, settings: Settings, dataset: Path, sha256: str) -> dict[str, float]:
    provider, buyer, offer, buyer_org = await seed(base_url, settings)
    product_id, plan_id = offer.split("/")
    size = (await asyncio.to_thread(dataset.stat)).st_size
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        started = time.perf_counter()
        uploaded = _ok(
            await client.put(
                f"/api/v1/products/{product_id}/dataset",
                content=upload_body(dataset),
                headers={"Authorization": provider, "Content-Type": "text/csv"},
            )
        )
        upload_seconds = time.perf_counter() - started
        if uploaded["sha256"] != sha256:
            raise RuntimeError("the server stored another digest than the file's")
        submit = f"/api/v1/products/{product_id}/submit"
        submitted = _ok(await client.post(submit, headers={"Authorization": provider}), 200)
        if submitted["status"] != "listed":
            raise RuntimeError(f"product not listed: {submitted['verdict']}")
        order = _ok(
            await client.post(
                "/api/v1/orders",
                json={
                    "product_id": product_id,
                    "plan_id": plan_id,
                    "buyer_organization_id": buyer_org,
                    "scenario": "traffic_planning",
                    "delivery_mode": "file",
                    "quantity": 1,
                    "accept_licence_terms": True,
                },
                headers={"Authorization": buyer},
            )
        )
        _ok(await client.post(f"/api/v1/orders/{order['id']}/pay", headers={"Authorization": buyer}), 200)
        link = _ok(await client.get(f"/api/v1/orders/{order['id']}/delivery", headers={"Authorization": buyer}), 200)
        idle = rss_mb(_tree(server_pid, _processes()))
        digest, received = hashlib.sha256(), 0
        with MemoryWatch(server_pid) as watch:
            started = time.perf_counter()
            async with client.stream("GET", link["download_url"]) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"download: {response.status_code} {await response.aread()!r}")
                header_sha = response.headers["x-content-sha256"]
                async for chunk in response.aiter_raw(CHUNK):
                    digest.update(chunk)
                    received += len(chunk)
            download_seconds = time.perf_counter() - started
        if received != size or digest.hexdigest() != sha256 or header_sha != sha256:
            raise RuntimeError("the downloaded file differs from the uploaded one")
    return {
        "upload_mb_s": size / MIB / upload_seconds,
        "download_mb_s": size / MIB / download_seconds,
        "download_seconds": download_seconds,
        "idle_mb": idle,
        "peak_mb": watch.peak,
        "samples": watch.samples,
    }


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024, help="dataset size in MiB")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if not 1 <= args.size_mb <= 4096:
        parser.error("--size-mb must be between 1 and 4096")
    server_url = args.postgres.rpartition("/")[0]
    name = f"marketplace_bench_delivery_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp)
        dataset = storage / "dataset.csv"
        started = time.perf_counter()
        sha256 = await asyncio.to_thread(write_dataset, dataset, args.size_mb * MIB)
        print(f"generated a {args.size_mb} MiB CSV in {time.perf_counter() - started:.1f} s (sha256 {sha256[:16]}...)")
        settings = Settings(database_url=f"{server_url}/{name}", storage_dir=storage, jwt_ttl_seconds=7200)
        await create_postgres_database(f"{server_url}/postgres", name)
        try:
            await asyncio.to_thread(db_upgrade, settings)
            with serving(settings.database_url, storage, 1) as (base_url, server_pid):
                result = await run(base_url, server_pid, settings, dataset, sha256)
            reference = await asyncio.to_thread(disk_reference, dataset)
        finally:
            await drop_postgres_database(f"{server_url}/postgres", name)
    verdict = "met" if result["peak_mb"] < MEMORY_LIMIT_MB else "NOT met"
    print(f"upload (streamed PUT, stored by sha256): {result['upload_mb_s']:.1f} MB/s")
    print(
        f"download through the signed link: {result['download_mb_s']:.1f} MB/s "
        f"({args.size_mb} MiB in {result['download_seconds']:.1f} s), sha256 verified"
    )
    print(
        f"server memory (granian main process + worker, summed RSS): {result['idle_mb']:.1f} MB before, "
        f"peak {result['peak_mb']:.1f} MB during the download ({int(result['samples'])} samples); "
        f"limit {MEMORY_LIMIT_MB} MB: {verdict}"
    )
    print(f"reference, reading and hashing the file from disk: {reference:.1f} MB/s")
    print(f"ratio download / disk reference: {result['download_mb_s'] / reference:.3f}")
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min)")
    return 0 if result["peak_mb"] < MEMORY_LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
