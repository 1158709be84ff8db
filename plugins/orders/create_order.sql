-- A new order in one statement: the order row, its lines and its first history
-- row; one answer row per line (the order's columns repeated), by line name as
-- repository.order_lines sorts them.
--
-- $1-$14 the orders columns; $15-$18 the lines as parallel arrays (item id,
-- name, unit price, quantity); $19-$21 the history row's actor id, role and
-- reason. The lines and the history refer to the order inserted by the same
-- statement (foreign keys are checked at its end).
WITH new_order AS (
    INSERT INTO orders (store_id, customer_id, customer_name, type, status, address, latitude,
        longitude, phone, comment, subtotal, delivery_fee, total, currency)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    RETURNING id, store_id, customer_id, customer_name, type, status, address, latitude,
        longitude, phone, comment, subtotal, delivery_fee, total, currency, created_at, updated_at
), lines AS (
    INSERT INTO order_items (order_id, item_id, name, unit_price, quantity, line_total)
    SELECT new_order.id, line.item_id, line.name, line.unit_price, line.quantity,
        line.unit_price * line.quantity
    FROM new_order,
        unnest($15::bigint[], $16::text[], $17::bigint[], $18::integer[])
            WITH ORDINALITY AS line (item_id, name, unit_price, quantity, n)
    ORDER BY line.n
    RETURNING item_id, name, unit_price, quantity, line_total
), history AS (
    INSERT INTO order_history (order_id, from_status, to_status, actor_id, role, reason)
    SELECT new_order.id, NULL, new_order.status, $19, $20, $21 FROM new_order
)
SELECT o.*, l.item_id AS line_item_id, l.name AS line_name, l.unit_price AS line_unit_price,
    l.quantity AS line_quantity, l.line_total AS line_line_total
FROM new_order o CROSS JOIN lines l
ORDER BY l.name
