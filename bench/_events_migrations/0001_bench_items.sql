-- The rows the events benchmark creates: one per API create, with or without an event.
CREATE TABLE bench_items (
    id          bigserial PRIMARY KEY,
    title       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
