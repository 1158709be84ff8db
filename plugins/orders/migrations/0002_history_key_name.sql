-- Which API key made a status change: its `name` in the tenant YAML
-- (api.keys[].name, core.config.model.ApiKey). NULL for people, jobs and
-- keys without a name; role and actor_id still say who acted.
ALTER TABLE order_history ADD COLUMN key_name text;
