CREATE SEQUENCE film_film_id_seq;

CREATE TABLE film (
    film_id integer DEFAULT nextval('film_film_id_seq'::regclass) NOT NULL,
    title text NOT NULL,
    description text,
    release_year year,
    language_id integer NOT NULL REFERENCES language (language_id),
    rental_rate numeric(4,2) DEFAULT 4.99 NOT NULL,
    last_update timestamp with time zone DEFAULT now() NOT NULL,
    fulltext tsvector NOT NULL,
    CONSTRAINT film_pkey PRIMARY KEY (film_id)
);
CREATE INDEX film_fulltext_idx ON film USING gist (fulltext);

CREATE TRIGGER film_fulltext_trigger BEFORE INSERT OR UPDATE ON film
    FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger('fulltext', 'pg_catalog.english', 'title', 'description');

CREATE TABLE film_actor (
    actor_id integer NOT NULL REFERENCES actor (actor_id),
    film_id integer NOT NULL REFERENCES film (film_id),
    last_update timestamp with time zone DEFAULT now() NOT NULL,
    PRIMARY KEY (actor_id, film_id)
);
CREATE INDEX idx_fk_film_id ON film_actor USING btree (film_id);
