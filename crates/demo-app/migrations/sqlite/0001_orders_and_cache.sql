-- Orders. AUTOINCREMENT so an id is never reused (clients keep ids and page
-- with `id > after`), matching PostgreSQL's sequence. created_at is RFC 3339
-- UTC text with at most microseconds, so it reads back exactly as written.
CREATE TABLE orders (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sku                 TEXT    NOT NULL,
    quantity            INTEGER NOT NULL,
    unit_price_cents    INTEGER NOT NULL,
    total_cents         INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    -- NULL for requests without a key; UNIQUE ignores NULLs.
    idempotency_key     TEXT    UNIQUE,
    -- Hash of (sku, quantity, unit_price_cents): a replay must match it.
    request_fingerprint TEXT    NOT NULL
) STRICT;

CREATE TABLE cache (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
