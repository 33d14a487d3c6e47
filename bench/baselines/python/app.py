"""The Python baseline of the benchmark: demo-app's benchmarked endpoints on
FastAPI + uvicorn, instrumented with OpenTelemetry the way the roadmap's
original stack would be.

Endpoints (same paths, status codes and JSON keys as demo-app):
  GET  /api/info     podinfo's info document
  GET  /healthz      {"status": "OK"}
  POST /api/echo     202 with the request body
  POST /api/orders   201 + Location, the order stored in SQLite

Telemetry follows demo-app's rule: the FastAPI instrumentation is always
installed, and spans and metrics are exported over OTLP/gRPC only when
OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK reads OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER and the other standard variables itself).

SQLite is configured like demo-app's store: WAL journal, fsync on every
commit (synchronous=FULL), BEGIN IMMEDIATE, INSERT ... RETURNING.

Settings: BENCH_DATA_PATH (folder of orders.db, required for /api/orders).
"""

import hashlib
import json
import logging
import os
import platform
import socket
import sqlite3
import sys
import threading
from datetime import datetime, timezone

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from pydantic import BaseModel, ConfigDict, Field

VERSION = "0.1.0"
HOSTNAME = socket.gethostname()

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = logging.getLogger("baseline")


def configure_telemetry() -> bool:
    """OTLP export of traces and metrics when an endpoint is configured."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    return True


TELEMETRY = configure_telemetry()
tracer = trace.get_tracer("baseline")
app = FastAPI(title="python-baseline", version=VERSION)


@app.get("/api/info")
async def info() -> dict:
    return {
        "hostname": HOSTNAME,
        "version": VERSION,
        "revision": "bench",
        "color": "#34577c",
        "logo": "",
        "message": "greetings from the python baseline",
        "goos": sys.platform,
        "goarch": platform.machine(),
        "runtime": f"python {platform.python_version()} (uvicorn)",
        "num_goroutine": str(threading.active_count()),
        "num_cpu": str(len(os.sched_getaffinity(0))),
    }


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "OK"}


@app.post("/api/echo")
async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(
        content=body,
        status_code=202,
        media_type="application/octet-stream",
        headers={"content-security-policy": "default-src 'none'"},
    )


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    quantity: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0, le=100_000_000)


SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sku                 TEXT    NOT NULL,
    quantity            INTEGER NOT NULL,
    unit_price_cents    INTEGER NOT NULL,
    total_cents         INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    idempotency_key     TEXT    UNIQUE,
    request_fingerprint TEXT    NOT NULL
) STRICT
"""

_local = threading.local()


def connection() -> sqlite3.Connection:
    """One connection per worker thread (FastAPI runs sync handlers in a pool)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        folder = os.environ["BENCH_DATA_PATH"]
        os.makedirs(folder, exist_ok=True)
        conn = sqlite3.connect(os.path.join(folder, "orders.db"), isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(SCHEMA)
        _local.conn = conn
    return conn


@app.post("/api/orders", status_code=201)
def create_order(order: OrderRequest) -> JSONResponse:
    total = order.quantity * order.unit_price_cents
    created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    canonical = f"{order.quantity}\n{order.unit_price_cents}\n{order.sku}"
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    conn = connection()
    with tracer.start_as_current_span(
        "INSERT orders",
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system.name": "sqlite", "db.operation.name": "INSERT", "db.collection.name": "orders"},
    ):
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "INSERT INTO orders (sku, quantity, unit_price_cents, total_cents, created_at, request_fingerprint) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (order.sku, order.quantity, order.unit_price_cents, total, created_at, fingerprint),
            ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    order_id = row[0]
    log.info(json.dumps({"message": "order created", "order.id": order_id, "order.total_cents": total}))
    body = {
        "id": order_id,
        "sku": order.sku,
        "quantity": order.quantity,
        "unit_price_cents": order.unit_price_cents,
        "total_cents": total,
        "created_at": created_at,
    }
    return JSONResponse(body, status_code=201, headers={"location": f"/api/orders/{order_id}"})


FastAPIInstrumentor.instrument_app(app)
