CREATE SEQUENCE customer_customer_id_seq;

CREATE TABLE customer (
    customer_id integer DEFAULT nextval('customer_customer_id_seq'::regclass) NOT NULL PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text,
    create_date date DEFAULT CURRENT_DATE NOT NULL,
    last_update timestamp with time zone DEFAULT now()
);

CREATE SEQUENCE payment_payment_id_seq;

CREATE TABLE payment (
    payment_id integer DEFAULT nextval('payment_payment_id_seq'::regclass) NOT NULL,
    customer_id integer NOT NULL,
    amount numeric(5,2) NOT NULL,
    payment_date timestamp with time zone NOT NULL,
    PRIMARY KEY (payment_date, payment_id)
) PARTITION BY RANGE (payment_date);

CREATE TABLE payment_p2024_10 PARTITION OF payment
    FOR VALUES FROM ('2024-10-01 00:00:00+00') TO ('2024-11-01 00:00:00+00');
CREATE TABLE payment_p2024_11 PARTITION OF payment
    FOR VALUES FROM ('2024-11-01 00:00:00+00') TO ('2024-12-01 00:00:00+00');
CREATE TABLE payment_p2024_12 PARTITION OF payment
    FOR VALUES FROM ('2024-12-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');

CREATE INDEX idx_fk_payment_p2024_10_customer_id ON payment_p2024_10 USING btree (customer_id);
CREATE INDEX idx_fk_payment_p2024_11_customer_id ON payment_p2024_11 USING btree (customer_id);
CREATE INDEX idx_fk_payment_p2024_12_customer_id ON payment_p2024_12 USING btree (customer_id);
ALTER TABLE payment_p2024_10 ADD CONSTRAINT payment_p2024_10_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customer (customer_id);
ALTER TABLE payment_p2024_11 ADD CONSTRAINT payment_p2024_11_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customer (customer_id);
ALTER TABLE payment_p2024_12 ADD CONSTRAINT payment_p2024_12_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES customer (customer_id);

CREATE MATERIALIZED VIEW customer_totals AS
    SELECT c.customer_id, c.last_name, sum(p.amount) AS total
      FROM customer c JOIN payment p ON p.customer_id = c.customer_id
     GROUP BY c.customer_id, c.last_name
  WITH NO DATA;
