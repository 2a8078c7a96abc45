-- Least privilege where the card data lives (PCI DSS 7.2.5, 8.2.2): a role that owns the schema
-- and one login per function that touches the database, with exactly the grants its code needs.
--
-- This migration manages roles, so it runs as the cluster's master user (the only migration that
-- does; the runner takes the owner role for every later one). It is idempotent: roles belong to
-- the cluster, not the database, and may exist already. It is expand-only: code that still signs
-- in as the master (the other colour during a shift) keeps every privilege it used, because the
-- master becomes a member of the owner role.

DO $$
BEGIN
    -- Aurora's built-in marker of IAM database authentication: a member can sign in only with an
    -- IAM auth token, never with a password.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
        RAISE EXCEPTION 'the role rds_iam is missing: IAM database authentication needs Aurora PostgreSQL';
    END IF;
    -- Owns every schema object; nobody signs in as it: the migrator takes it with SET ROLE.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payments_migrator') THEN
        CREATE ROLE payments_migrator NOLOGIN;
    END IF;
    -- The process function's login.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payments_process') THEN
        CREATE ROLE payments_process LOGIN;
    END IF;
END
$$;
ALTER ROLE payments_migrator WITH NOLOGIN;
-- No password exists for the payment path: nothing to leak, store or rotate.
ALTER ROLE payments_process WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD NULL;
GRANT rds_iam TO payments_process;
-- The master (old code during a shift, and the migrator) keeps the owner's privileges and may SET ROLE to it.
GRANT payments_migrator TO CURRENT_USER;

-- Nobody but the owner creates anything: no DDL, no temporary tables for the logins.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO payments_migrator;
GRANT USAGE ON SCHEMA public TO payments_process;
DO $$
BEGIN
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO payments_process', current_database());
END
$$;

-- Who wrote each ledger transaction, as the database saw it (a login cannot set it: it has no
-- INSERT privilege on the column). Rows written before this migration were written by the master.
ALTER TABLE ledger_transactions ADD COLUMN IF NOT EXISTS recorded_by text NOT NULL DEFAULT current_user;

ALTER TABLE merchants OWNER TO payments_migrator;
ALTER TABLE customers OWNER TO payments_migrator;
ALTER TABLE ledger_transactions OWNER TO payments_migrator;
ALTER TABLE ledger_entries OWNER TO payments_migrator;
ALTER TABLE schema_migrations OWNER TO payments_migrator;
ALTER FUNCTION ledger_transaction_balances() OWNER TO payments_migrator;
ALTER FUNCTION ledger_is_append_only() OWNER TO payments_migrator;
-- Functions are executable by PUBLIC by default; the ledger's trigger functions need no caller.
REVOKE EXECUTE ON FUNCTION ledger_transaction_balances(), ledger_is_append_only() FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE payments_migrator REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- process: reads a merchant's and a customer's status (functions/process: check_parties).
GRANT SELECT (merchant_id, status) ON merchants TO payments_process;
GRANT SELECT (customer_id, merchant_id, status) ON customers TO payments_process;
-- process: appends a transaction and its two entries (record_in_ledger). ON CONFLICT
-- (transaction_id) and RETURNING transaction_id read that column; the balance trigger runs as
-- the inserting role and sums the transaction's entries. No UPDATE, DELETE or TRUNCATE.
GRANT INSERT (transaction_id, merchant_id, amount_minor, currency), SELECT (transaction_id)
    ON ledger_transactions TO payments_process;
GRANT INSERT (transaction_id, account, direction, amount_minor, currency),
      SELECT (transaction_id, direction, amount_minor)
    ON ledger_entries TO payments_process;
GRANT USAGE ON SEQUENCE ledger_entries_entry_id_seq TO payments_process;
-- process: compares the schema's version with the one its code embeds.
GRANT SELECT (version) ON schema_migrations TO payments_process;
