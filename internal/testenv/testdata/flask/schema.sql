-- Schema of the reference Flask target (estimates): users, their work items,
-- the analysis lines of each item, and a per-day login counter. The index on
-- analysis(work_item_id) is made by name, so a mode can drop and restore it.
CREATE TABLE IF NOT EXISTS users (
    id            serial PRIMARY KEY,
    username      varchar(150) NOT NULL UNIQUE,
    email         varchar(254) NOT NULL,
    password_hash varchar(255) NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS work_items (
    id         serial PRIMARY KEY,
    owner_id   integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code       varchar(20) NOT NULL,
    title      varchar(200) NOT NULL,
    unit       varchar(10) NOT NULL,
    volume     numeric(12, 2) NOT NULL,
    unit_price numeric(14, 2) NOT NULL,
    status     varchar(10) NOT NULL DEFAULT 'draft',
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS work_items_owner_code_idx ON work_items (owner_id, code);

CREATE TABLE IF NOT EXISTS analysis (
    id           bigserial PRIMARY KEY,
    work_item_id integer NOT NULL REFERENCES work_items (id) ON DELETE CASCADE,
    kind         varchar(10) NOT NULL,
    component    varchar(100) NOT NULL,
    coefficient  numeric(10, 4) NOT NULL,
    price        numeric(14, 2) NOT NULL
);
CREATE INDEX IF NOT EXISTS analysis_work_item_idx ON analysis (work_item_id);

CREATE TABLE IF NOT EXISTS login_counter (
    day      date PRIMARY KEY,
    attempts integer NOT NULL DEFAULT 0
);
