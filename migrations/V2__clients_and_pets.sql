-- Customers and their animals.
CREATE TABLE clients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    created_at  timestamptz NOT NULL
);

CREATE TABLE pets (
    id          uuid PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name        text NOT NULL,
    species     text NOT NULL,
    breed       text,
    birth_date  date,
    weight_kg   numeric(5, 2)
);

CREATE INDEX pets_client_id_idx ON pets (client_id);
