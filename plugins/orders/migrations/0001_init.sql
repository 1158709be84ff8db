-- Orders plugin: stores, catalog, orders, their items and status history.
-- Runs with search_path = the tenant schema. The CHECK on orders.status is
-- kept by the core from the tenant's status machine (statuses.orders).

CREATE TABLE stores (
    id            text        PRIMARY KEY,
    name          text        NOT NULL,
    partner_ids   bigint[]    NOT NULL DEFAULT '{}',
    pickup        boolean     NOT NULL DEFAULT true,
    delivery      boolean     NOT NULL DEFAULT false,
    delivery_fee  bigint      NOT NULL DEFAULT 0 CHECK (delivery_fee >= 0),
    min_order     bigint      NOT NULL DEFAULT 0 CHECK (min_order >= 0),
    currency      text        NOT NULL DEFAULT 'RUB',
    address       text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE categories (
    id          text        PRIMARY KEY,
    store_id    text        NOT NULL REFERENCES stores (id),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    position    integer     NOT NULL DEFAULT 0,
    archived    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    id           bigserial   PRIMARY KEY,
    store_id     text        NOT NULL REFERENCES stores (id),
    category_id  text        NOT NULL REFERENCES categories (id),
    sku          text        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text        NOT NULL DEFAULT '',
    price        bigint      NOT NULL CHECK (price >= 0),
    available    boolean     NOT NULL DEFAULT true,
    -- Deleting through the API archives, so a restart's seeding does not resurrect it.
    archived     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (store_id, sku)
);
CREATE INDEX items_category_idx ON items (category_id) WHERE NOT archived;

CREATE TABLE orders (
    id             bigserial   PRIMARY KEY,
    store_id       text        NOT NULL REFERENCES stores (id),
    customer_id    bigint      NOT NULL,
    customer_name  text        NOT NULL DEFAULT '',
    type           text        NOT NULL CHECK (type IN ('pickup', 'delivery')),
    status         text        NOT NULL,
    address        text        NOT NULL DEFAULT '',
    latitude       double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude      double precision CHECK (longitude BETWEEN -180 AND 180),
    phone          text        NOT NULL DEFAULT '',
    comment        text        NOT NULL DEFAULT '',
    subtotal       bigint      NOT NULL CHECK (subtotal >= 0),
    delivery_fee   bigint      NOT NULL DEFAULT 0 CHECK (delivery_fee >= 0),
    total          bigint      NOT NULL CHECK (total = subtotal + delivery_fee),
    currency       text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (type = 'pickup' OR address <> '' OR latitude IS NOT NULL)
);
CREATE INDEX orders_store_status_idx ON orders (store_id, status, created_at);
CREATE INDEX orders_customer_idx ON orders (customer_id, created_at DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at);

CREATE TABLE order_items (
    order_id    bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    item_id     bigint  NOT NULL REFERENCES items (id),
    name        text    NOT NULL,
    unit_price  bigint  NOT NULL CHECK (unit_price >= 0),
    quantity    integer NOT NULL CHECK (quantity > 0),
    line_total  bigint  NOT NULL CHECK (line_total = unit_price * quantity),
    PRIMARY KEY (order_id, item_id)
);

CREATE TABLE order_history (
    id           bigserial   PRIMARY KEY,
    order_id     bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text        NOT NULL,
    actor_id     bigint,
    role         text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_history_order_idx ON order_history (order_id, id);

-- Partner notifications, so a status change can edit every partner's copy.
CREATE TABLE partner_messages (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    chat_id     bigint NOT NULL,
    message_id  bigint NOT NULL,
    PRIMARY KEY (order_id, chat_id)
);
