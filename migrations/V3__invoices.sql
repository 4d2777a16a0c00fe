-- Billing: invoices, their lines, and tips split between groomers.
CREATE TYPE invoice_status AS ENUM ('draft', 'open', 'paid', 'void');

CREATE TABLE invoices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id),
    status      invoice_status NOT NULL,
    issued_at   timestamptz NOT NULL,
    notes       text
);

CREATE INDEX invoices_client_id_idx ON invoices (client_id);

CREATE TABLE invoice_line_items (
    invoice_id  bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no     integer NOT NULL,
    service_id  integer NOT NULL REFERENCES services (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(8, 2) NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE tip_splits (
    invoice_id  bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    split_no    integer NOT NULL,
    groomer_id  integer NOT NULL REFERENCES staff (id),
    amount      numeric(8, 2) NOT NULL CHECK (amount > 0),
    PRIMARY KEY (invoice_id, split_no)
);
