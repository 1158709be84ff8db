"""PostgreSQL and Redis: the pool and tenant schemas, migrations, status constraints, events, jobs."""
