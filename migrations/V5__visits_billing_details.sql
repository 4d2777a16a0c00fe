-- Details the seed language fills from related rows (seeds/seed.toml): where clients live and
-- what they prefer, a visit's status and end, and an invoice's visit, amounts and payment.
CREATE TYPE visit_status AS ENUM ('scheduled', 'completed', 'cancelled');

ALTER TABLE clients
    ADD COLUMN city        text,
    ADD COLUMN region      text,
    ADD COLUMN postal_code text,
    ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}';

ALTER TABLE grooming_visits
    ADD COLUMN client_id    bigint REFERENCES clients (id),
    ADD COLUMN status       visit_status NOT NULL DEFAULT 'scheduled',
    ADD COLUMN ends_at      timestamptz,
    ADD COLUMN cancelled_at timestamptz;

ALTER TABLE invoices
    ADD COLUMN visit_id       bigint REFERENCES grooming_visits (id),
    ADD COLUMN subtotal       numeric(10, 2) NOT NULL DEFAULT 0,
    ADD COLUMN tax            numeric(10, 2) NOT NULL DEFAULT 0,
    ADD COLUMN tip            numeric(10, 2) NOT NULL DEFAULT 0,
    ADD COLUMN total          numeric(10, 2) NOT NULL DEFAULT 0,
    ADD COLUMN paid_at        timestamptz,
    ADD COLUMN payment_method text;

CREATE INDEX invoices_visit_id_idx ON invoices (visit_id);

ALTER TABLE invoice_line_items ADD COLUMN description text;

ALTER TABLE tip_splits ADD COLUMN groomer_name text;
