-- Appointments: which pet, which groomer, which service, when.
CREATE TABLE grooming_visits (
    id            bigserial PRIMARY KEY,
    pet_id        uuid NOT NULL REFERENCES pets (id) ON DELETE CASCADE,
    groomer_id    integer NOT NULL REFERENCES staff (id),
    service_id    integer NOT NULL REFERENCES services (id),
    scheduled_at  timestamptz NOT NULL,
    notes         text
);

CREATE INDEX grooming_visits_pet_id_idx ON grooming_visits (pet_id);
CREATE INDEX grooming_visits_scheduled_at_idx ON grooming_visits (scheduled_at);
