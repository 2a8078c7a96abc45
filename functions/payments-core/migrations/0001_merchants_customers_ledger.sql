-- Customers and merchants (read by process from the Aurora reader) and the double-entry ledger
-- (written by process on the writer). Amounts are integers in the currency's minor unit.
CREATE TABLE merchants (
    merchant_id text PRIMARY KEY CHECK (length(merchant_id) BETWEEN 1 AND 64),
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customers (
    customer_id text PRIMARY KEY CHECK (length(customer_id) BETWEEN 1 AND 64),
    merchant_id text NOT NULL REFERENCES merchants,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per approved payment: the primary key is what makes a retried ledger write a no-op.
CREATE TABLE ledger_transactions (
    transaction_id text PRIMARY KEY,
    merchant_id    text NOT NULL REFERENCES merchants,
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       char(3) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
    entry_id       bigserial PRIMARY KEY,
    transaction_id text NOT NULL REFERENCES ledger_transactions,
    account        text NOT NULL,
    direction      text NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       char(3) NOT NULL,
    UNIQUE (transaction_id, direction)
);
