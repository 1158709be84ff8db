-- What pricing an order reads, in one statement: the store, its orderable items
-- among those ordered (share-locked, so their prices hold until commit) and,
-- for a capped customer, how many of their orders are active.
--
-- $1 the store id; $2 the ordered item ids; $3 the customer, NULL when no cap
-- applies (active_orders is then NULL); $4 the statuses that do not count.
--
-- One row always: the store columns are NULL for an unknown store, which locks
-- no item. The count runs after the caller's advisory lock of the customer
-- (an earlier statement), so this statement's snapshot shows every order
-- committed while it waited.
SELECT
    (SELECT count(*) FROM orders
     WHERE $3::bigint IS NOT NULL AND customer_id = $3 AND NOT (status = ANY($4::text[])))
        AS active_orders,
    s.*,
    coalesce(i.item_ids, '{}') AS item_ids,
    coalesce(i.item_names, '{}') AS item_names,
    coalesce(i.item_prices, '{}') AS item_prices
FROM (SELECT 1) AS one
LEFT JOIN stores s ON s.id = $1
LEFT JOIN LATERAL (
    SELECT array_agg(locked.id ORDER BY locked.id) AS item_ids,
        array_agg(locked.name ORDER BY locked.id) AS item_names,
        array_agg(locked.price ORDER BY locked.id) AS item_prices
    FROM (
        SELECT id, name, price FROM items
        WHERE store_id = s.id AND id = ANY($2::bigint[]) AND available AND NOT archived
        ORDER BY id FOR SHARE
    ) AS locked
) AS i ON true
