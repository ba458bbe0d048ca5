"""The five search indices' names: the one list every search module and error message draws on."""

NAMES = ("workflows", "executions", "audit_logs", "system_metrics", "marketplace")
