"""Services of the shifts plugin, one module per aggregate.

* :mod:`.commission`: the pay of one shift (pure, integers);
* :mod:`.employees`: employees and invites;
* :mod:`.shifts`: clock-in/out, status changes, corrections;
* :mod:`.reports`: month reports, CSV and XLSX;
* :mod:`.ranks`: the monthly ranks and reminders (cron jobs);
* :mod:`.imports`: ``tenantry import <tenant> shifts <files...>``.
"""
