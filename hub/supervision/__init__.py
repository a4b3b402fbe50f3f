"""Supervision (督查): what supervisors chase and the figures they read, in one place.

- `alerts`: red and yellow cards, overdue 容缺 commitments, provisional due dates (`warnings`);
- `figures`: the one figures query, per channel, desk or department, for any period (the
  dashboard, its CSV);
- `report`: the daily report's figures, from that query (`hub.jobs.report` writes the files).
- `service`: the service channels' counts (trips saved, visits, agency tasks, online share,
  waiting time) for the dashboard's 服务渠道 strip and the daily report.

Re-exports only."""

from hub.supervision.alerts import Alert, iter_warnings, warnings

__all__ = ["Alert", "iter_warnings", "warnings"]
