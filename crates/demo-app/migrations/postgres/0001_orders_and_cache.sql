-- Same schema as migrations/sqlite, in PostgreSQL types.
CREATE TABLE orders (
    id                  BIGSERIAL   PRIMARY KEY,
    sku                 TEXT        NOT NULL,
    quantity            BIGINT      NOT NULL,
    unit_price_cents    BIGINT      NOT NULL,
    total_cents         BIGINT      NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    -- NULL for requests without a key; UNIQUE ignores NULLs.
    idempotency_key     TEXT        UNIQUE,
    -- Hash of (sku, quantity, unit_price_cents): a replay must match it.
    request_fingerprint TEXT        NOT NULL
);

CREATE TABLE cache (
    key        TEXT        PRIMARY KEY,
    value      BYTEA       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
